// Names of code addresses, for the call graph: a coroutine frame's first word is its resume
// function (g++ and clang lay frames out so), and that function's symbol names the coroutine.
//
// dladdr() sees only the dynamic symbol table, which holds no static, hidden or executable-local
// function, so the ELF .symtab of every loaded object is read instead: once, lazily, on the first
// look-up, from the mapped file (dl_iterate_phdr lists the objects; the main program is
// /proc/self/exe) through elf.cpp, which the `weave` program shares to name another process's
// code. A stripped object falls back to its .dynsym. The files stay mapped read-only for the
// process's life, so that the names are pointers into them and nothing is copied.
//
// g++ names a coroutine's resume function `<mangled>.actor`, clang `<mangled>.resume`; the
// demangler renders both as "name(args) [clone .actor]" and the suffix is cut off. g++'s actor
// takes the frame as its one parameter, a type named after the coroutine ("f()::_Z1fv.Frame"),
// so the coroutine's signature is that name demangled. An address no
// symbol covers is named by its hex value.

#include <cxxabi.h>
#include <link.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "debug/elf.hpp"
#include "debug/symbols.hpp"

namespace weave::detail::dbg {

namespace {

struct Table {
  std::vector<ElfSymbol> symbols;  ///< sorted by begin
  bool seen_main = false;          ///< the first nameless object (the program) was read
};

void load_object(Table& t, const char* path, std::uintptr_t bias) {
  if (std::optional<ElfFile> f = ElfFile::open(path)) f->add_functions(bias, t.symbols);
}

int collect(dl_phdr_info* info, std::size_t, void* out) {
  auto& t = *static_cast<Table*>(out);
  const char* name = info->dlpi_name;
  if (name == nullptr || name[0] == '\0') {
    // The first nameless object is the program itself.
    if (t.seen_main) return 0;
    t.seen_main = true;
    load_object(t, "/proc/self/exe", info->dlpi_addr);
    return 0;
  }
  load_object(t, name, info->dlpi_addr);
  return 0;
}

const Table& table() {
  static Table t;
  static std::once_flag once;
  std::call_once(once, [] {
    dl_iterate_phdr(collect, &t);
    sort_symbols(t.symbols);
  });
  return t;
}

/// Cuts the compilers' clone suffixes: " [clone .actor]", " [clone .resume]", and the like.
std::string strip_clones(std::string s) {
  for (std::size_t at; (at = s.rfind(" [clone ")) != std::string::npos && s.back() == ']';) {
    s.erase(at);
  }
  return s;
}

}  // namespace

std::string demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && out != nullptr ? std::string(out) : std::string(mangled);
  std::free(out);
  // A raw name keeps the compilers' suffixes as ".actor" / ".resume" / ".destroy".
  for (std::string_view suffix : {".actor", ".resume", ".destroy", ".cleanup"}) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      name.erase(name.size() - suffix.size());
    }
  }
  name = strip_clones(std::move(name));
  // g++'s actor takes the frame, whose type is named after the coroutine:
  // "f(f()::_Z1fv.Frame*)"; the coroutine's own name is that mangled prefix, demangled.
  constexpr std::string_view kFrame = ".Frame*)";
  const std::size_t z = name.rfind("::_Z");
  if (z != std::string::npos && name.size() > kFrame.size() &&
      name.compare(name.size() - kFrame.size(), kFrame.size(), kFrame) == 0) {
    const std::string inner = name.substr(z + 2, name.size() - kFrame.size() - z - 2);
    return demangle(inner.c_str());
  }
  return name;
}

std::string coroutine_name(std::string name) {
  if (name.rfind("weave::Coro<", 0) != 0 && name.rfind("weave::AsyncGenerator<", 0) != 0) {
    return name;
  }
  int depth = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '<') ++depth;
    if (name[i] == '>' && --depth == 0) {
      // A type alone (no template function follows) is left as it is.
      if (i + 1 < name.size() && name[i + 1] == ' ') name.erase(0, i + 2);
      break;
    }
  }
  return name;
}

std::string hex_address(std::uintptr_t a) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#zx", static_cast<std::size_t>(a));
  return buf;
}

std::string symbol_name(const void* address) {
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  const char* name = find_function(table().symbols, a);
  return name != nullptr ? demangle(name) : hex_address(a);
}

}  // namespace weave::detail::dbg
