#pragma once
// Code addresses to function names (symbols.cpp): the ELF symbol tables of the loaded objects,
// read once, lazily, and demangled.

#include <cstdint>
#include <string>

namespace weave::detail::dbg {

/// The demangled name of the function that holds `address` (compiler clone suffixes cut off), or
/// its hex value when no symbol covers it.
std::string symbol_name(const void* address);
/// A mangled name demangled, with ".actor"/".resume" and " [clone ...]" suffixes cut off.
std::string demangle(const char* mangled);
/// A coroutine's demangled name without its return type: a function template's name starts with
/// it ("weave::Coro<...> "), and asyncio shows none.
std::string coroutine_name(std::string demangled);
/// `a` as "0x..." (an address no symbol covers).
std::string hex_address(std::uintptr_t a);

}  // namespace weave::detail::dbg
