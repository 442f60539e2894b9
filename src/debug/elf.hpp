#pragma once
// ELF64 symbol tables, read from the mapped file: the call graph names this process's code with
// them (symbols.cpp), and the `weave` program (tools/weave) another process's code and finds its
// table of debug offsets.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace weave::detail::dbg {

struct ElfSymbol {
  std::uintptr_t begin;
  std::uintptr_t end;
  const char* name;  ///< in a mapped file's string table
};

/// An ELF64 file mapped read-only. The mapping is never released, so that the names handed out
/// stay valid for the life of the process.
class ElfFile {
 public:
  /// nullopt when `path` cannot be read or is no ELF64 file.
  static std::optional<ElfFile> open(const char* path);

  /// Appends the function symbols, moved by `bias`: from .symtab, or .dynsym when stripped.
  void add_functions(std::uintptr_t bias, std::vector<ElfSymbol>& out) const;
  /// The value of the symbol `name` (.symtab first, then .dynsym), unbiased.
  std::optional<std::uint64_t> find_symbol(std::string_view name) const;
  /// The address of the section `name`, unbiased.
  std::optional<std::uint64_t> find_section(std::string_view name) const;
  /// The virtual address the file's offset 0 is loaded at (its first PT_LOAD, page-aligned):
  /// a mapping of offset 0 at address A has the bias A minus this.
  std::uint64_t base_vaddr() const;

 private:
  ElfFile(const unsigned char* data, std::size_t size) : data_(data), size_(size) {}
  const void* shdrs() const;
  std::size_t shnum() const;

  const unsigned char* data_;
  std::size_t size_;
};

/// Sorts a symbol table for find_function.
void sort_symbols(std::vector<ElfSymbol>& symbols);
/// The name of the function that covers `address` in a sorted table, or nullptr.
const char* find_function(const std::vector<ElfSymbol>& symbols, std::uintptr_t address);

}  // namespace weave::detail::dbg
