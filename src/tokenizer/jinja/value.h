// Values of the Jinja subset engine, with Python's semantics where a chat template can see
// them (jinja2 evaluates templates as Python objects, so output must be what Python's str(),
// ==, < and truthiness give):
//   Undefined   a missing variable, attribute or key: prints as "", is false, iterates as
//               empty; any other use is an error naming what was undefined.
//   None, bool, int (64-bit, overflow is an error), float, str (UTF-8; lengths and indices
//               count code points, as Python does),
//   Sequence    list, tuple, range, the dict views and one-shot generators (the results of
//               map/select/reject/selectattr/rejectattr/reverse, consumed by iteration, as
//               Python generators are; printing one is an error since Python prints an
//               object address),
//   Dict        insertion-ordered, as Python dicts and nlohmann::ordered_json are,
//   Namespace   jinja2's namespace(): the one mutable object,
//   Function    a built-in global or a bound method ("a,b".split).
//
// Containers (sequences, dicts, namespaces) nest at most kMaxValueNesting deep, and a
// namespace's attributes hold no namespace, in a container or not (jinja2 allows it, but no
// chat template needs it, and it is how a value comes to contain itself): printing, comparing,
// dumping and freeing a value recurse through it, so a deeper or cyclic one would overflow
// the stack. Both are errors when the value is made, and so are a string past
// kMaxStringBytes and a sequence or dict past kMaxItems (a template that doubles a string in
// a loop would otherwise take all the memory there is).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mlaserve::tokenizer::jinja {

inline constexpr int kMaxValueNesting = 100;
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;
inline constexpr size_t kMaxItems = size_t{1} << 22;

class Value;

[[noreturn]] void fail_string_too_long(size_t bytes);

// `s`, if it is at most kMaxStringBytes long; fails otherwise. Every string value passes here.
inline std::string bounded(std::string s) {
  if (s.size() > kMaxStringBytes) [[unlikely]] fail_string_too_long(s.size());
  return s;
}

struct Undefined {
  std::string hint;  // what jinja2 would say when it is used: "'x' is undefined"
};
struct None {};

enum class SeqKind { kList, kTuple, kRange, kGenerator, kDictKeys, kDictValues, kDictItems };

struct Sequence {
  SeqKind kind = SeqKind::kList;
  std::vector<Value> items;
  int64_t range_start = 0, range_stop = 0, range_step = 1;  // kRange only, for repr()
  mutable size_t consumed = 0;  // kGenerator only: items already taken
  int depth = 1;                 // containers nested in it, itself included
  bool holds_namespace = false;  // some item is, or holds, a namespace
};

struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  int depth = 1;
  bool holds_namespace = false;
  const Value* find(const Value& key) const;
};

struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  int depth = 1;  // at least that of its attributes' containers, plus one
  const Value* find(std::string_view name) const;
  // Fails for a value that is or holds a namespace, or that would nest too deep.
  void set(std::string_view name, Value value);
};

struct CallArgs;
struct Function {
  std::string name;  // for error messages: "split", "range"
  std::function<Value(CallArgs&)> call;
};

class Value {
 public:
  using Storage = std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const Sequence>,
                               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Function>>;

  Value() : v_(Undefined{"undefined value"}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(None n) : v_(n) {}
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(bounded(std::move(s))) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::shared_ptr<const Sequence> s) : v_(std::move(s)) {}
  Value(std::shared_ptr<const Dict> d) : v_(std::move(d)) {}
  Value(std::shared_ptr<Namespace> n) : v_(std::move(n)) {}
  Value(std::shared_ptr<const Function> f) : v_(std::move(f)) {}

  static Value list(std::vector<Value> items, SeqKind kind = SeqKind::kList);
  static Value dict(std::vector<std::pair<Value, Value>> entries);
  static Value function(std::string name, std::function<Value(CallArgs&)> call);
  static Value from_json(const nlohmann::ordered_json& j);

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python's numbers.Number
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_sequence() const { return std::holds_alternative<std::shared_ptr<const Sequence>>(v_); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<const Dict>>(v_); }
  bool is_namespace() const { return std::holds_alternative<std::shared_ptr<Namespace>>(v_); }
  bool is_function() const { return std::holds_alternative<std::shared_ptr<const Function>>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  double as_double() const;  // any number, as a double
  int64_t as_integer() const;  // int or bool
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Sequence& as_sequence() const { return *std::get<std::shared_ptr<const Sequence>>(v_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Function& as_function() const { return *std::get<std::shared_ptr<const Function>>(v_); }
  const Undefined& as_undefined() const { return std::get<Undefined>(v_); }

  const Storage& storage() const { return v_; }

 private:
  Storage v_;
};

// Positional and keyword arguments of a call, with Python-style binding helpers.
struct CallArgs {
  std::string function;  // for messages
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Takes parameter `name` at position `index` (positional, else keyword), or nullptr.
  const Value* get(size_t index, std::string_view name) const;
  // Fails if there are more positional arguments than `max_positional` or unknown keywords.
  void expect(size_t max_positional, std::initializer_list<std::string_view> keywords) const;
};

// Python's type name of a value ("str", "int", "list", "NoneType", ...), for messages.
std::string type_name(const Value& v);

// Python truthiness (Undefined is false; a generator is always true).
bool truthy(const Value& v);
// Python ==.
bool equals(const Value& a, const Value& b);
// Python <, for numbers, strings and sequences; throws for other types.
bool less(const Value& a, const Value& b);
// Python str() (Undefined gives "") and repr().
std::string to_str(const Value& v);
std::string repr(const Value& v);

// The items Python would iterate over: a sequence's items (taking a generator's remaining
// items), a dict's keys, a string's characters; Undefined iterates as empty. Throws for
// values that are not iterable.
std::vector<Value> iterate(const Value& v);
// Python len(); throws for values without one (numbers, generators).
int64_t length(const Value& v);

// Throws the error jinja2 raises when an Undefined is used in an operation.
[[noreturn]] void fail_undefined(const Value& v);

}  // namespace mlaserve::tokenizer::jinja
