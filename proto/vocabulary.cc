#include "lxmig/proto/vocabulary.h"

#include <google/protobuf/descriptor.h>

#include <map>
#include <string>
#include <vector>

namespace lxmig {
namespace {

// Names of one enum, derived once from its descriptor.
class Names {
 public:
  Names(const google::protobuf::EnumDescriptor* d, std::string_view prefix) {
    for (int i = 0; i < d->value_count(); ++i) {
      const auto* v = d->value(i);
      std::string n = v->name().substr(prefix.size());
      for (char& c : n) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      byNumber_[v->number()] = n;
      byName_[n] = v->number();
    }
  }
  std::string_view name(int number) const {
    auto it = byNumber_.find(number);
    return it == byNumber_.end() ? std::string_view("unknown") : std::string_view(it->second);
  }
  bool parse(std::string_view s, int* out) const {
    auto it = byName_.find(std::string(s));
    if (it == byName_.end()) return false;
    *out = it->second;
    return true;
  }

 private:
  std::map<int, std::string> byNumber_;
  std::map<std::string, int, std::less<>> byName_;
};

const Names& modes() {
  static const Names n(v1::MigrationMode_descriptor(), "MODE_");
  return n;
}
const Names& trackers() {
  static const Names n(v1::Tracker_descriptor(), "TRACKER_");
  return n;
}
const Names& results() {
  static const Names n(v1::MigrationResult_descriptor(), "RESULT_");
  return n;
}
const Names& phases() {
  static const Names n(v1::Phase_descriptor(), "PHASE_");
  return n;
}
const Names& phaseResults() {
  static const Names n(v1::PhaseResult_descriptor(), "PHASE_RESULT_");
  return n;
}

template <typename E>
bool parseInto(const Names& names, std::string_view s, E* out) {
  int v = 0;
  if (!names.parse(s, &v)) return false;
  *out = static_cast<E>(v);
  return true;
}

}  // namespace

std::string_view name(v1::MigrationMode v) { return modes().name(v); }
std::string_view name(v1::Tracker v) { return trackers().name(v); }
std::string_view name(v1::MigrationResult v) { return results().name(v); }
std::string_view name(v1::Phase v) { return phases().name(v); }
std::string_view name(v1::PhaseResult v) { return phaseResults().name(v); }

bool parse(std::string_view s, v1::MigrationMode* out) { return parseInto(modes(), s, out); }
bool parse(std::string_view s, v1::Tracker* out) { return parseInto(trackers(), s, out); }
bool parse(std::string_view s, v1::MigrationResult* out) { return parseInto(results(), s, out); }
bool parse(std::string_view s, v1::Phase* out) { return parseInto(phases(), s, out); }
bool parse(std::string_view s, v1::PhaseResult* out) { return parseInto(phaseResults(), s, out); }

}  // namespace lxmig
