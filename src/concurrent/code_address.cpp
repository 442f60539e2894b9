// Function pointers that survive the process boundary.
//
// A worker is a fresh execution of the same program, so every module is mapped at another
// address (ASLR, PIE). An address therefore travels as (module name, offset from the module's
// load bias), where the name is the one the dynamic linker reports ("" for the main program) and
// is the same in both processes. The module table comes from dl_iterate_phdr, cached, and is
// rescanned once on a miss (a library loaded since). Only executable segments are accepted on
// either side, so a corrupted or foreign message cannot make a worker jump into data.

#include <link.h>

#include <mutex>
#include <string>
#include <vector>

#include "weave/detail/concurrent_serialization.hpp"

namespace weave::concurrent::detail {

namespace {

struct Segment {
  std::uintptr_t begin;
  std::uintptr_t end;
  std::size_t module;  // index into ModuleTable::modules
};

struct Module {
  std::string name;
  std::uintptr_t bias;  // load bias: the address of offset 0
};

struct ModuleTable {
  std::vector<Module> modules;
  std::vector<Segment> code;  // executable PT_LOAD ranges
};

int collect_module(dl_phdr_info* info, std::size_t, void* out) {
  auto& table = *static_cast<ModuleTable*>(out);
  std::size_t index = table.modules.size();
  table.modules.push_back({info->dlpi_name ? info->dlpi_name : "", info->dlpi_addr});
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
      std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
      table.code.push_back({begin, begin + ph.p_memsz, index});
    }
  }
  return 0;
}

class CodeMap {
 public:
  /// Sets (module, offset) of a code address; false if no module holds it.
  bool find(std::uintptr_t address, std::string& module, std::uintptr_t& offset) {
    std::lock_guard lock(mutex_);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (const Segment* s = segment_at(address)) {
        const Module& m = table_.modules[s->module];
        module = m.name;
        offset = address - m.bias;
        return true;
      }
      rescan();
    }
    return false;
  }

  /// The code address at `offset` in module `name`, or 0.
  std::uintptr_t resolve(const std::string& name, std::uintptr_t offset) {
    std::lock_guard lock(mutex_);
    for (int attempt = 0; attempt < 2; ++attempt) {
      for (std::size_t i = 0; i < table_.modules.size(); ++i) {
        if (table_.modules[i].name != name) continue;
        std::uintptr_t address = table_.modules[i].bias + offset;
        const Segment* s = segment_at(address);
        if (s && s->module == i) return address;
      }
      rescan();
    }
    return 0;
  }

 private:
  const Segment* segment_at(std::uintptr_t address) const {
    for (const Segment& s : table_.code) {
      if (address >= s.begin && address < s.end) return &s;
    }
    return nullptr;
  }
  void rescan() {
    ModuleTable fresh;
    dl_iterate_phdr(collect_module, &fresh);
    table_ = std::move(fresh);
  }

  std::mutex mutex_;
  ModuleTable table_;
};

CodeMap& code_map() {
  static CodeMap map;
  return map;
}

}  // namespace

void write_code_address(Writer& w, std::uintptr_t address) {
  std::uintptr_t offset = 0;
  std::string module;
  if (!code_map().find(address, module, offset)) {
    throw ValueError("function pointer does not point into a loaded module's code");
  }
  w.write_array(2);
  w.write_string(module);
  w.write_uint(offset);
}

std::uintptr_t read_code_address(Reader& r) {
  if (r.read_array() != 2) throw ValueError("serialized code address is malformed");
  std::string name = r.read_string();
  std::uintptr_t offset = r.read_uint();
  std::uintptr_t address = code_map().resolve(name, offset);
  if (address == 0) {
    throw ValueError("serialized code address is not code of this program: " +
                     (name.empty() ? std::string("main program") : name) + "+" +
                     std::to_string(offset));
  }
  return address;
}

}  // namespace weave::concurrent::detail
