#pragma once
// The two views of a snapshot: `ps` (a row per task) and `pstree` (the await tree, as asyncio
// 3.14's `python -m asyncio pstree`), written to a FILE.

#include <cstdio>

#include "snapshot.hpp"

namespace weave_tool {

void print_ps(Target& target, const Snapshot& s, std::FILE* out);
/// Returns the number of await cycles found (each is printed).
int print_pstree(Target& target, const Snapshot& s, std::FILE* out);

}  // namespace weave_tool
