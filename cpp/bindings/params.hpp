// Part of the binding (included by module.cpp only): model parameters between the core's
// ModelConfig and Python dicts, one parameter at a time by its type in the parameter table
// (rtrec/model_params.def), and the table itself for rtrec_native.parameters().
#pragma once

#include "convert.hpp"

namespace rtrec_binding {


// A float32 parameter as the Python float that prints like it (0.05, not 0.0500000007...).
py::float_ shortest(float v) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, v).ptr;
  return py::float_(std::strtod(std::string(text, end).c_str(), nullptr));
}

// ModelConfig <-> the dict of constructor arguments Python uses, one parameter at a time by
// its type in the table (model_params.def): "model" names the family; a parameter that is off
// (kZeroIsOff at 0) or does not apply to the family (kTwoTowerOnly for mf) is None.
struct ParamToPython {
  const rtrec::ModelConfig& config;
  py::dict& out;

  bool none(const rtrec::ParamInfo& p, bool zero) const {
    return !rtrec::param_applies(p, config) ||
           ((p.flags & rtrec::kZeroIsOff) != 0 && zero);
  }
  template <class T>
  void put(const rtrec::ParamInfo& p, bool zero, T value) const {
    out[p.name] = none(p, zero) ? py::object(py::none()) : py::object(std::move(value));
  }
  void operator()(const rtrec::ParamInfo& p, uint32_t v) const { put(p, v == 0, py::int_(v)); }
  void operator()(const rtrec::ParamInfo& p, uint64_t v) const { put(p, v == 0, py::int_(v)); }
  void operator()(const rtrec::ParamInfo& p, float v) const { put(p, v == 0.0f, shortest(v)); }
  void operator()(const rtrec::ParamInfo& p, double v) const { put(p, v == 0.0, py::float_(v)); }
  void operator()(const rtrec::ParamInfo& p, bool v) const { put(p, false, py::bool_(v)); }
  void operator()(const rtrec::ParamInfo& p, const rtrec::Widths& v) const { put(p, v.empty(), py::tuple(py::cast(v))); }
  template <class Choice>
  void operator()(const rtrec::ParamInfo& p, Choice v) const {
    put(p, false, py::str(rtrec::Choices<Choice>::names[static_cast<int>(v)]));
  }
};

py::dict config_to_dict(const rtrec::ModelConfig& c) {
  py::dict d;
  d["model"] = rtrec::family_name(c.family);
  rtrec::ModelConfig fields = c;
  rtrec::for_each_param(ParamToPython{c, d}, fields);
  return d;
}

// An unsigned integer: a negative or oversized value is refused here with its name (the core
// checks the real range).
template <class T>
T unsigned_value(const py::handle v, const std::string& name) {
  if (!PyLong_Check(v.ptr())) throw py::type_error(name + " must be an int");
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow != 0 || x < 0 || static_cast<unsigned long long>(x) > std::numeric_limits<T>::max())
    throw py::value_error(name + " must be a non-negative int that fits in " + std::to_string(8 * sizeof(T)) +
                          " bits, got " + py::str(v).cast<std::string>());
  return static_cast<T>(x);
}

// The inverse. Every parameter must be present (Python fills in the defaults); None keeps the
// family's default (off, or not applicable); values arrive type-checked by the Python layer.
struct ParamFromPython {
  const py::dict& in;

  template <class T>
  void operator()(const rtrec::ParamInfo& p, T& field) const {
    if (!in.contains(p.name)) throw py::value_error(std::string("missing model parameter '") + p.name + "'");
    const py::object v = in[p.name];
    if (!v.is_none()) field = convert(v, p.name, field);
  }
  static uint32_t convert(const py::object& v, const char* name, uint32_t) { return unsigned_value<uint32_t>(v, name); }
  static uint64_t convert(const py::object& v, const char* name, uint64_t) { return unsigned_value<uint64_t>(v, name); }
  static float convert(const py::object& v, const char*, float) { return v.cast<float>(); }
  static double convert(const py::object& v, const char*, double) { return v.cast<double>(); }
  static bool convert(const py::object& v, const char*, bool) { return v.cast<bool>(); }
  static rtrec::Widths convert(const py::object& v, const char* name, const rtrec::Widths&) {
    rtrec::Widths widths;
    for (const py::handle w : v.cast<py::tuple>()) widths.push_back(unsigned_value<uint32_t>(w, std::string(name) + " widths"));
    return widths;
  }
  template <class Choice>
  static Choice convert(const py::object& v, const char* name, Choice) {
    const std::string text = v.cast<std::string>();
    const auto& names = rtrec::Choices<Choice>::names;
    for (size_t i = 0; i < std::size(names); ++i)
      if (text == names[i]) return static_cast<Choice>(i);
    std::string accepted;
    for (const char* n : names) accepted += std::string(accepted.empty() ? "'" : ", '") + n + "'";
    throw py::value_error(std::string(name) + " must be one of " + accepted + ", got '" + text + "'");
  }
};

rtrec::ModelConfig config_from_dict(const py::dict& d) {
  std::vector<std::string> known{"model"};
  rtrec::ModelConfig probe;
  rtrec::for_each_param([&](const rtrec::ParamInfo& p, const auto&) { known.push_back(p.name); }, probe);
  for (const auto& item : d) {
    const std::string key = py::str(item.first);
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw py::value_error("unknown model parameter '" + key + "'");
  }
  rtrec::ModelConfig c = rtrec::default_config(rtrec::parse_family(d["model"].cast<std::string>()));
  rtrec::for_each_param(ParamFromPython{d}, c);
  rtrec::validate_config(c);
  return c;
}

// The parameter table for Python: each parameter's name, kind, range, doc and the defaults of
// both families (rtrec_native.parameters(), the CLI's model options and Recommender's docs).
struct ParamDescription {
  py::list& out;
  const py::dict& defaults;  // family name -> config_to_dict of its defaults

  void add(const rtrec::ParamInfo& p, const char* kind, py::object choices = py::none()) const {
    py::dict d;
    d["name"] = p.name;
    d["kind"] = kind;
    d["choices"] = std::move(choices);
    const bool ranged = std::string(kind) == "int" || std::string(kind) == "float" || std::string(kind) == "widths";
    d["low"] = ranged ? py::object(py::float_(p.low)) : py::object(py::none());
    d["high"] = ranged ? py::object(py::float_(p.high)) : py::object(py::none());
    d["low_open"] = (p.flags & rtrec::kLowOpen) != 0;
    d["zero_is_off"] = (p.flags & rtrec::kZeroIsOff) != 0;
    d["two_tower_only"] = (p.flags & rtrec::kTwoTowerOnly) != 0;
    d["doc"] = p.doc;
    py::dict per_family;
    for (const auto& family : defaults) per_family[family.first] = family.second.cast<py::dict>()[p.name];
    d["default"] = per_family;
    out.append(d);
  }
  void operator()(const rtrec::ParamInfo& p, uint32_t) const { add(p, "int"); }
  void operator()(const rtrec::ParamInfo& p, uint64_t) const { add(p, "int"); }
  void operator()(const rtrec::ParamInfo& p, float) const { add(p, "float"); }
  void operator()(const rtrec::ParamInfo& p, double) const { add(p, "float"); }
  void operator()(const rtrec::ParamInfo& p, bool) const { add(p, "bool"); }
  void operator()(const rtrec::ParamInfo& p, const rtrec::Widths&) const { add(p, "widths"); }
  template <class Choice>
  void operator()(const rtrec::ParamInfo& p, Choice) const {
    py::list names;
    for (const char* n : rtrec::Choices<Choice>::names) names.append(n);
    add(p, "choice", py::tuple(names));
  }
};

py::list parameter_table() {
  py::list out;
  py::dict defaults;
  for (const char* family : rtrec::Choices<rtrec::Family>::names)
    defaults[family] = config_to_dict(rtrec::default_config(rtrec::parse_family(family)));
  rtrec::ModelConfig probe;
  rtrec::for_each_param(ParamDescription{out, defaults}, probe);
  return out;
}


}  // namespace rtrec_binding
