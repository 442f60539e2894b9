// Names of code addresses, for the call graph: a coroutine frame's first word is its resume
// function (g++ and clang lay frames out so), and that function's symbol names the coroutine.
//
// dladdr() sees only the dynamic symbol table, which holds no static, hidden or executable-local
// function, so the ELF .symtab of every loaded object is read instead: once, lazily, on the first
// look-up, from the mapped file (dl_iterate_phdr lists the objects; the main program is
// /proc/self/exe). A stripped object falls back to its .dynsym. The files stay mapped read-only
// for the process's life, so that the names are pointers into them and nothing is copied.
//
// g++ names a coroutine's resume function `<mangled>.actor`, clang `<mangled>.resume`; the
// demangler renders both as "name(args) [clone .actor]" and the suffix is cut off. g++'s actor
// takes the frame as its one parameter, a type named after the coroutine ("f()::_Z1fv.Frame"),
// so the coroutine's signature is that name demangled. An address no
// symbol covers is named by its hex value.

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "debug/symbols.hpp"

namespace weave::detail::dbg {

namespace {

struct Symbol {
  std::uintptr_t begin;
  std::uintptr_t end;
  const char* name;  ///< in a mapped file's string table
};

struct Table {
  std::vector<Symbol> symbols;  ///< sorted by begin
  bool seen_main = false;       ///< the first nameless object (the program) was read
};

/// Maps `path` read-only; nullptr when it cannot be read. The mapping is never released.
const unsigned char* map_file(const char* path, std::size_t& size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  void* p = MAP_FAILED;
  if (::fstat(fd, &st) == 0 && st.st_size > static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    size = static_cast<std::size_t>(st.st_size);
    p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  return p == MAP_FAILED ? nullptr : static_cast<const unsigned char*>(p);
}

/// Adds the function symbols of the symbol section `sh` (SHT_SYMTAB or SHT_DYNSYM).
void add_symbols(Table& t, const unsigned char* file, std::size_t size, const Elf64_Shdr* shdrs,
                 std::size_t shnum, const Elf64_Shdr& sh, std::uintptr_t bias) {
  if (sh.sh_link >= shnum || sh.sh_entsize != sizeof(Elf64_Sym)) return;
  const Elf64_Shdr& strtab = shdrs[sh.sh_link];
  if (sh.sh_offset + sh.sh_size > size || strtab.sh_offset + strtab.sh_size > size) return;
  const auto* syms = reinterpret_cast<const Elf64_Sym*>(file + sh.sh_offset);
  const char* strings = reinterpret_cast<const char*>(file + strtab.sh_offset);
  const std::size_t count = sh.sh_size / sizeof(Elf64_Sym);
  for (std::size_t i = 0; i < count; ++i) {
    const Elf64_Sym& s = syms[i];
    if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_value == 0 || s.st_shndx == SHN_UNDEF) {
      continue;
    }
    if (s.st_name >= strtab.sh_size) continue;
    const std::uintptr_t begin = bias + s.st_value;
    t.symbols.push_back(
        {begin, begin + std::max<std::uint64_t>(s.st_size, 1), strings + s.st_name});
  }
}

void load_object(Table& t, const char* path, std::uintptr_t bias) {
  std::size_t size = 0;
  const unsigned char* file = map_file(path, size);
  if (file == nullptr) return;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(file);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shentsize != sizeof(Elf64_Shdr) ||
      eh->e_shoff + std::uint64_t{eh->e_shnum} * sizeof(Elf64_Shdr) > size) {
    return;
  }
  const auto* shdrs = reinterpret_cast<const Elf64_Shdr*>(file + eh->e_shoff);
  const Elf64_Shdr* symtab = nullptr;
  const Elf64_Shdr* dynsym = nullptr;
  for (std::size_t i = 0; i < eh->e_shnum; ++i) {
    if (shdrs[i].sh_type == SHT_SYMTAB) symtab = &shdrs[i];
    if (shdrs[i].sh_type == SHT_DYNSYM) dynsym = &shdrs[i];
  }
  if (const Elf64_Shdr* use = symtab != nullptr ? symtab : dynsym) {
    add_symbols(t, file, size, shdrs, eh->e_shnum, *use, bias);
  }
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
    std::sort(t.symbols.begin(), t.symbols.end(),
              [](const Symbol& a, const Symbol& b) { return a.begin < b.begin; });
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

std::string symbol_name(const void* address) {
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  const std::vector<Symbol>& s = table().symbols;
  auto it = std::upper_bound(s.begin(), s.end(), a,
                             [](std::uintptr_t v, const Symbol& sym) { return v < sym.begin; });
  // The nearest symbol at or below the address that covers it; an exact start wins over a
  // covering range of a larger neighbour.
  while (it != s.begin()) {
    --it;
    if (a >= it->begin && a < it->end) return demangle(it->name);
    if (it->begin + (1u << 20) < a) break;  // no function is that long
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#zx", static_cast<std::size_t>(a));
  return buf;
}

}  // namespace weave::detail::dbg
