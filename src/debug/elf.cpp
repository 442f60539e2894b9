// ELF64 files read through a read-only mapping (elf.hpp). Every offset taken from the file is
// checked against its size: the reader may be handed any file a process maps.

#include "debug/elf.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace weave::detail::dbg {

namespace {

const unsigned char* map_file(const char* path, std::size_t& size) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  void* p = MAP_FAILED;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_size > static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    size = static_cast<std::size_t>(st.st_size);
    p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  return p == MAP_FAILED ? nullptr : static_cast<const unsigned char*>(p);
}

bool within(std::uint64_t offset, std::uint64_t length, std::size_t size) {
  return offset <= size && length <= size - offset;
}

/// Calls fn(symbol, name) for each symbol of the symbol section `sh` with a valid name.
template <class Fn>
void for_each_symbol(const unsigned char* file, std::size_t size, const Elf64_Shdr* shdrs,
                     std::size_t shnum, const Elf64_Shdr& sh, Fn&& fn) {
  if (sh.sh_link >= shnum || sh.sh_entsize != sizeof(Elf64_Sym)) return;
  const Elf64_Shdr& strtab = shdrs[sh.sh_link];
  if (!within(sh.sh_offset, sh.sh_size, size) || !within(strtab.sh_offset, strtab.sh_size, size)) {
    return;
  }
  const auto* syms = reinterpret_cast<const Elf64_Sym*>(file + sh.sh_offset);
  const char* strings = reinterpret_cast<const char*>(file + strtab.sh_offset);
  const std::size_t count = sh.sh_size / sizeof(Elf64_Sym);
  for (std::size_t i = 0; i < count; ++i) {
    if (syms[i].st_name >= strtab.sh_size) continue;
    fn(syms[i], strings + syms[i].st_name);
  }
}

const Elf64_Shdr* find_type(const Elf64_Shdr* shdrs, std::size_t shnum, std::uint32_t type) {
  for (std::size_t i = 0; i < shnum; ++i) {
    if (shdrs[i].sh_type == type) return &shdrs[i];
  }
  return nullptr;
}

}  // namespace

std::optional<ElfFile> ElfFile::open(const char* path) {
  std::size_t size = 0;
  const unsigned char* file = map_file(path, size);
  if (file == nullptr) return std::nullopt;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(file);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_shentsize != sizeof(Elf64_Shdr) ||
      !within(eh->e_shoff, std::uint64_t{eh->e_shnum} * sizeof(Elf64_Shdr), size) ||
      (eh->e_phnum != 0 &&
       (eh->e_phentsize != sizeof(Elf64_Phdr) ||
        !within(eh->e_phoff, std::uint64_t{eh->e_phnum} * sizeof(Elf64_Phdr), size)))) {
    ::munmap(const_cast<unsigned char*>(file), size);
    return std::nullopt;
  }
  return ElfFile(file, size);
}

const void* ElfFile::shdrs() const {
  return data_ + reinterpret_cast<const Elf64_Ehdr*>(data_)->e_shoff;
}
std::size_t ElfFile::shnum() const {
  return reinterpret_cast<const Elf64_Ehdr*>(data_)->e_shnum;
}

void ElfFile::add_functions(std::uintptr_t bias, std::vector<ElfSymbol>& out) const {
  const auto* sh = static_cast<const Elf64_Shdr*>(shdrs());
  const Elf64_Shdr* use = find_type(sh, shnum(), SHT_SYMTAB);
  if (use == nullptr) use = find_type(sh, shnum(), SHT_DYNSYM);
  if (use == nullptr) return;
  for_each_symbol(data_, size_, sh, shnum(), *use, [&](const Elf64_Sym& s, const char* name) {
    if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_value == 0 || s.st_shndx == SHN_UNDEF) {
      return;
    }
    const std::uintptr_t begin = bias + s.st_value;
    out.push_back({begin, begin + std::max<std::uint64_t>(s.st_size, 1), name});
  });
}

std::optional<std::uint64_t> ElfFile::find_symbol(std::string_view name) const {
  const auto* sh = static_cast<const Elf64_Shdr*>(shdrs());
  for (std::uint32_t type : {SHT_SYMTAB, SHT_DYNSYM}) {
    const Elf64_Shdr* table = find_type(sh, shnum(), type);
    if (table == nullptr) continue;
    std::optional<std::uint64_t> found;
    for_each_symbol(data_, size_, sh, shnum(), *table, [&](const Elf64_Sym& s, const char* n) {
      if (!found && s.st_shndx != SHN_UNDEF && s.st_value != 0 && name == n) found = s.st_value;
    });
    if (found) return found;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> ElfFile::find_section(std::string_view name) const {
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(data_);
  const auto* sh = static_cast<const Elf64_Shdr*>(shdrs());
  if (eh->e_shstrndx >= shnum()) return std::nullopt;
  const Elf64_Shdr& names = sh[eh->e_shstrndx];
  if (!within(names.sh_offset, names.sh_size, size_)) return std::nullopt;
  const char* strings = reinterpret_cast<const char*>(data_ + names.sh_offset);
  for (std::size_t i = 0; i < shnum(); ++i) {
    if (sh[i].sh_name >= names.sh_size) continue;
    const char* n = strings + sh[i].sh_name;
    if (std::strlen(n) == name.size() && name == n && sh[i].sh_addr != 0) return sh[i].sh_addr;
  }
  return std::nullopt;
}

std::uint64_t ElfFile::base_vaddr() const {
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(data_);
  const auto* ph = reinterpret_cast<const Elf64_Phdr*>(data_ + eh->e_phoff);
  for (std::size_t i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type == PT_LOAD) return (ph[i].p_vaddr - ph[i].p_offset) & ~std::uint64_t{0xfff};
  }
  return 0;
}

void sort_symbols(std::vector<ElfSymbol>& symbols) {
  std::sort(symbols.begin(), symbols.end(),
            [](const ElfSymbol& a, const ElfSymbol& b) { return a.begin < b.begin; });
}

const char* find_function(const std::vector<ElfSymbol>& s, std::uintptr_t a) {
  auto it = std::upper_bound(s.begin(), s.end(), a,
                             [](std::uintptr_t v, const ElfSymbol& sym) { return v < sym.begin; });
  // The nearest symbol at or below the address that covers it; an exact start wins over a
  // covering range of a larger neighbour.
  while (it != s.begin()) {
    --it;
    if (a >= it->begin && a < it->end) return it->name;
    if (it->begin + (1u << 20) < a) break;  // no function is that long
  }
  return nullptr;
}

}  // namespace weave::detail::dbg
