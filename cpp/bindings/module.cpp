// The only file that knows about Python: converts and checks arguments, releases the GIL
// around every core call, and returns numpy arrays. Defaults, limits and rules are the
// core's (config.hpp), exported here as they are; none are decided here.
// C++ exceptions map to Python ones by pybind11's rules: std::invalid_argument and
// std::length_error -> ValueError, std::bad_alloc -> MemoryError; the core's own exception
// types are registered below (IdKindError -> TypeError, the snapshot errors).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "rtrec/config.hpp"
#include "rtrec/diversity.hpp"
#include "rtrec/hash.hpp"
#include "rtrec/model.hpp"
#include "rtrec/parallel.hpp"
#include "rtrec/snapshot.hpp"

namespace py = pybind11;
using rtrec::IdBatch;
using rtrec::IdKind;
using rtrec::Model;

namespace {

std::string utf8(const py::handle& s, const char* side);

using KeyArray = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// One side's IDs: a uint64 array (integer IDs, already reinterpreted from int64 by Python)
// or a list of str (hashed here with the core's stable hash; the strings are kept).
struct Ids {
  KeyArray array;
  std::vector<std::string> names;
  std::vector<uint64_t> hashed;
  IdBatch batch;
};

Ids to_ids(const py::handle& obj, const char* side) {
  Ids ids;
  if (py::isinstance<py::list>(obj)) {
    const py::list list = py::reinterpret_borrow<py::list>(obj);
    ids.names.reserve(list.size());
    for (const py::handle item : list) {
      if (!PyUnicode_Check(item.ptr())) throw py::type_error(std::string(side) + ": expected a list of str");
      ids.names.push_back(utf8(item, side));
    }
    ids.hashed.resize(ids.names.size());
    for (size_t i = 0; i < ids.names.size(); ++i) ids.hashed[i] = rtrec::hash_string_id(ids.names[i]);
    ids.batch = IdBatch{ids.hashed.data(), ids.names.data(), ids.names.size()};
  } else {
    ids.array = py::cast<KeyArray>(obj);
    if (ids.array.ndim() != 1) throw py::value_error(std::string(side) + ": expected a 1-D array");
    ids.batch = IdBatch{ids.array.data(), nullptr, static_cast<size_t>(ids.array.shape(0))};
  }
  return ids;
}

// A str as UTF-8; a str that cannot be encoded (a lone surrogate) is bad input, not an
// internal error.
std::string utf8(const py::handle& s, const char* side) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    throw py::value_error(std::string(side) + ": string IDs must be valid Unicode text (encodable as UTF-8)");
  }
  return std::string(data, static_cast<size_t>(size));
}

// A number argument as double; anything else (or too large for a double) is a ValueError
// naming the argument.
double number(const py::handle& value, const char* name) {
  if (PyBool_Check(value.ptr()) || !(PyFloat_Check(value.ptr()) || PyIndex_Check(value.ptr()) ||
                                     PyNumber_Check(value.ptr())))
    throw py::type_error(std::string(name) + " must be a number");
  const double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " must be a finite number that fits in a double");
  }
  return v;
}

// A single ID from Python: int-like (not bool) or str.
struct ScalarId {
  uint64_t key;
  std::optional<std::string> name;
};

ScalarId to_scalar_id(const py::handle& obj, const char* side) {
  PyObject* o = obj.ptr();
  if (PyUnicode_Check(o)) {
    ScalarId id{0, utf8(obj, side)};
    id.key = rtrec::hash_string_id(*id.name);
    return id;
  }
  if (PyBool_Check(o) || PyFloat_Check(o) || !PyIndex_Check(o))
    throw py::type_error(std::string(side) + " must be an int or a str, got " + Py_TYPE(o)->tp_name);
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(o));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0) throw py::value_error(std::string(side) + " must fit in a signed 64-bit integer");
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return ScalarId{static_cast<uint64_t>(v), std::nullopt};
}

// IDs from recommend()'s output: int64 array, or a list of str for string IDs.
py::object ids_of(const uint64_t* keys, const std::string* names, size_t n) {
  if (names != nullptr) {
    py::list out(n);
    for (size_t i = 0; i < n; ++i) out[i] = py::str(names[i]);
    return std::move(out);
  }
  py::array_t<int64_t> out(n);
  int64_t* p = out.mutable_data();
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(keys[i]);
  return std::move(out);
}

const char* kind_name(IdKind kind) {
  switch (kind) {
    case IdKind::kInt: return "int";
    case IdKind::kString: return "str";
    default: return "unset";
  }
}

template <class Array>
const typename Array::value_type* optional_data(const std::optional<Array>& a, size_t n, const char* name) {
  if (!a) return nullptr;
  if (a->ndim() != 1 || static_cast<size_t>(a->shape(0)) != n)
    throw py::value_error(std::string(name) + ": expected a 1-D array with one entry per event");
  return a->data();
}

rtrec::EventBatch make_batch(const Ids& users, const Ids& items, const std::optional<FloatArray>& labels,
                             const std::optional<FloatArray>& weights, const std::optional<DoubleArray>& timestamps) {
  if (users.batch.size != items.batch.size) throw py::value_error("users and items differ in length");
  const size_t n = users.batch.size;
  rtrec::EventBatch b;
  b.users = users.batch;
  b.items = items.batch;
  b.labels = optional_data(labels, n, "labels");
  b.weights = optional_data(weights, n, "weights");
  b.timestamps = optional_data(timestamps, n, "timestamps");
  b.size = n;
  return b;
}

// A retrieval call's filter: allow/deny lists (None, a uint64 array or a list of str, as
// Python converted them) and tags (None or a list of str). Owns what the core's view points at.
struct Filter {
  std::optional<Ids> allow, deny;
  std::vector<std::string> tags;
  bool has_tags = false;
  rtrec::CandidateFilter view() const {
    rtrec::CandidateFilter f;
    if (allow) f.allow = &allow->batch;
    if (deny) f.deny = &deny->batch;
    if (has_tags) f.tags = &tags;
    return f;
  }
};

Filter to_filter(const py::handle& allow, const py::handle& deny, const py::handle& tags) {
  Filter f;
  if (!allow.is_none()) f.allow.emplace(to_ids(allow, "items"));
  if (!deny.is_none()) f.deny.emplace(to_ids(deny, "exclude"));
  if (!tags.is_none()) {
    if (!py::isinstance<py::list>(tags)) throw py::type_error("tags: expected a list of str");
    for (const py::handle t : tags) {
      if (!PyUnicode_Check(t.ptr())) throw py::type_error("tags: expected a list of str");
      f.tags.push_back(utf8(t, "tags"));
    }
    f.has_tags = true;
  }
  return f;
}

// Runs a core call with the GIL released; std::out_of_range (an unknown ID or tag named by
// the core) becomes KeyError once the GIL is back.
template <class F>
void released(F&& call) {
  std::optional<std::string> missing;
  {
    py::gil_scoped_release release;
    try {
      call();
    } catch (const std::out_of_range& e) {
      missing = e.what();
    }
  }
  if (missing) throw py::key_error(*missing);
}

// One ranked list from the core, as Python gets it: (ids, scores, info dict).
struct RankedList {
  std::vector<uint64_t> keys;
  std::vector<std::string> names;
  py::array_t<float> scores;
  uint32_t found = 0;
  rtrec::RetrievalInfo info;

  RankedList(const Model& model, uint64_t k) {
    // The catalogue may grow during the call; a call never returns more than k, so k itself
    // (capped by the catalogue now, which only grows) bounds the output.
    const size_t capacity = std::max<size_t>(1, std::min<uint64_t>(k, model.items().size()));
    keys.resize(capacity);
    if (model.items().kind() == IdKind::kString) names.resize(capacity);
    scores = py::array_t<float>(capacity);
  }
  uint32_t capacity() const { return static_cast<uint32_t>(keys.size()); }
  rtrec::RecommendOutput out() { return {keys.data(), names.empty() ? nullptr : names.data(), scores.mutable_data()}; }
  py::tuple to_python() {
    found = std::min(found, capacity());
    scores.resize({static_cast<py::ssize_t>(found)});
    return py::make_tuple(ids_of(keys.data(), names.empty() ? nullptr : names.data(), found), scores, info_dict(info));
  }
  static py::dict info_dict(const rtrec::RetrievalInfo& i) {
    py::dict d;
    d["unknown_allowed"] = i.unknown_allowed;
    d["unknown_history"] = i.unknown_history;
    return d;
  }
};

// Many ranked lists (one per query) in rows of `width`: (keys, names or None, scores, counts, info).
struct RankedBatch {
  py::array_t<uint64_t> keys;
  std::vector<std::string> names;
  py::array_t<float> scores;
  py::array_t<uint32_t> counts;
  uint32_t width;
  rtrec::RetrievalInfo info;

  RankedBatch(const Model& model, size_t n, uint64_t k)
      : width(static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(k, model.items().size())))) {
    keys = py::array_t<uint64_t>({n, static_cast<size_t>(width)});
    if (model.items().kind() == IdKind::kString) names.resize(n * width);
    scores = py::array_t<float>({n, static_cast<size_t>(width)});
    counts = py::array_t<uint32_t>(n);
  }
  rtrec::RecommendOutput out() {
    return {keys.mutable_data(), names.empty() ? nullptr : names.data(), scores.mutable_data()};
  }
  py::tuple to_python() {
    py::object name_list = py::none();
    if (!names.empty()) {
      py::list l(names.size());
      for (size_t j = 0; j < names.size(); ++j) l[j] = py::str(names[j]);
      name_list = std::move(l);
    }
    return py::make_tuple(keys, name_list, scores, counts, RankedList::info_dict(info));
  }
};

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

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rtrec_native native core (private; use rtrec_native.Recommender)";
  m.attr("openmp_enabled") = rtrec::openmp_enabled();
  // The floor of a per-event call from Python: a bound function taking what update_one takes
  // (two IDs and a label) and doing nothing. benchmarks/bench_update_latency.py times it next
  // to update_one, so "how close to the floor" is measured, not guessed.
  m.def("_noop", [](const py::object&, const py::object&, const py::object&) {}, py::arg("user"), py::arg("item"),
        py::arg("label") = py::none(), "Does nothing: the cost of calling a bound function (benchmarks).");
  m.def("compact_kernel", [] { return std::string(rtrec::CompactRows::kernel_name()); },
        "The kernel retrieval='compact' scans with on this CPU: avx512-vnni, avx2 or portable.");
  m.def("default_threads", [] { return rtrec::resolve_threads(0); },
        "Threads used when num_threads is None: OMP_NUM_THREADS if set, else all cores.");
  m.def("hash_string_id", [](const std::string& s) { return rtrec::hash_string_id(s); });
  m.def("defaults", [](const std::string& model) { return config_to_dict(rtrec::default_config(rtrec::parse_family(model))); },
        py::arg("model"), "The default constructor arguments of a model family ('mf' or 'two_tower').");
  m.def("default_epochs", [](const std::string& model) { return rtrec::default_epochs(rtrec::parse_family(model)); },
        py::arg("model"), "How many passes fit makes over its events by default, for a model family.");
  // The core's loss rules, so that Python keeps no copy of them.
  m.def("needs_labels", [](const std::string& loss) { return !rtrec::samples_negatives(rtrec::parse_loss(loss)); },
        py::arg("loss"), "Whether events of this loss need labels (squared, huber: ratings; logistic: clicks).");
  m.def("samples_negatives", [](const std::string& loss) { return rtrec::samples_negatives(rtrec::parse_loss(loss)); },
        py::arg("loss"),
        "Whether this loss learns implicit positives against sampled items (labels optional; a label <= 0 "
        "teaches nothing).");
  m.def("rating_loss", [](const std::string& loss) { return rtrec::rating_loss(rtrec::parse_loss(loss)); },
        py::arg("loss"), "Whether this loss regresses a rating (squared, huber).");
  m.def("parameters", &parameter_table,
        "The model parameters, in table order: name, kind, choices, range, doc and each family's default.");
  m.def("check_config", [](const py::dict& d) { config_from_dict(d); }, py::arg("config"),
        "Raises ValueError naming the first argument that is out of range for its family.");
  m.def(
      "losses",
      [](const std::string& model) {
        std::vector<std::string> names;
        for (rtrec::Loss l : rtrec::losses_of(rtrec::parse_family(model))) names.push_back(rtrec::loss_name(l));
        return names;
      },
      py::arg("model"), "The losses a model family trains with.");
  {
    py::dict limits;
    limits["max_dim"] = rtrec::kMaxDim;
    limits["max_features_per_id"] = rtrec::kMaxFeaturesPerId;
    limits["max_min_count"] = rtrec::kMaxMinCount;
    limits["max_rows"] = rtrec::kMaxRows;
    limits["max_negatives"] = rtrec::kMaxNegatives;
    limits["max_tower_layers"] = rtrec::kMaxTowerLayers;
    limits["max_tower_width"] = rtrec::kMaxTowerWidth;
    limits["max_history"] = rtrec::kMaxHistory;
    limits["max_diversity"] = rtrec::kMaxDiversity;
    limits["diversity_pool_factor"] = rtrec::kDiversityPoolFactor;
    limits["diversity_pool_min"] = rtrec::kDiversityPoolMin;
    limits["max_dedup_window"] = rtrec::kMaxDedupWindow;
    limits["max_user_rate"] = rtrec::kMaxUserRate;
    limits["max_filter_ids"] = rtrec::kMaxFilterIds;
    limits["max_filter_tags"] = rtrec::kMaxFilterTags;
    limits["max_query_history"] = rtrec::kMaxQueryHistory;
    m.attr("limits") = limits;
  }
  m.def(
      "consumed",
      [](const std::string& loss, std::optional<FloatArray> labels, std::optional<FloatArray> weights, size_t n) {
        const rtrec::Loss l = rtrec::parse_loss(loss);
        const float* y = optional_data(labels, n, "labels");
        const float* w = optional_data(weights, n, "weights");
        py::array_t<bool> out(n);
        bool* p = out.mutable_data();
        for (size_t i = 0; i < n; ++i) p[i] = rtrec::consumed(l, y != nullptr ? y[i] : 1.0f, w != nullptr ? w[i] : 1.0f);
        return out;
      },
      py::arg("loss"), py::arg("labels"), py::arg("weights"), py::arg("n"),
      "Which events put their item among the user's consumed items (the core's rule; a missing label counts as 1, "
      "a missing weight as 1).");
  // The core's ID-kind rule (IdKindError, embedding_table.hpp): a wrong kind of ID is a TypeError.
  py::register_exception<rtrec::IdKindError>(m, "IdKindError", PyExc_TypeError);
  py::register_exception<rtrec::SnapshotError>(m, "SnapshotError", PyExc_ValueError);
  py::register_exception<rtrec::DeltaOrderError>(m, "DeltaOrderError", PyExc_ValueError);
  py::register_exception<rtrec::MissingFileError>(m, "MissingFileError", PyExc_FileNotFoundError);
  m.def(
      "peek_snapshot",
      [](const std::string& path) {
        rtrec::SnapshotPosition p;
        {
          py::gil_scoped_release release;
          p = rtrec::peek_snapshot(path);
        }
        return py::make_tuple(p.full ? "snapshot" : "delta", p.lineage, p.sequence);
      },
      py::arg("path"), "(kind, lineage, sequence) from a snapshot or delta file's verified header.");

  py::class_<Model>(m, "Model")
      .def(py::init([](const py::dict& config) { return new Model(config_from_dict(config)); }), py::arg("config"))
      .def(
          "fit",
          [](Model& model, py::handle users, py::handle items, std::optional<FloatArray> labels,
             std::optional<FloatArray> weights, std::optional<DoubleArray> timestamps, uint32_t epochs,
             int num_threads) {
            const Ids u = to_ids(users, "users"), i = to_ids(items, "items");
            const rtrec::EventBatch batch = make_batch(u, i, labels, weights, timestamps);
            py::gil_scoped_release release;
            model.fit(batch, epochs, num_threads);
          },
          py::arg("users"), py::arg("items"), py::arg("labels"), py::arg("weights"), py::arg("timestamps"),
          py::arg("epochs"), py::arg("num_threads"))
      .def(
          "update",
          [](Model& model, py::handle users, py::handle items, std::optional<FloatArray> labels,
             std::optional<FloatArray> weights, std::optional<DoubleArray> timestamps) {
            const Ids u = to_ids(users, "users"), i = to_ids(items, "items");
            const rtrec::EventBatch batch = make_batch(u, i, labels, weights, timestamps);
            py::gil_scoped_release release;
            model.update(batch);
          },
          py::arg("users"), py::arg("items"), py::arg("labels"), py::arg("weights"), py::arg("timestamps"))
      .def(
          "update_one",
          [](Model& model, py::handle user, py::handle item, py::handle label, py::handle weight_arg,
             py::handle timestamp) {
            const ScalarId u = to_scalar_id(user, "user"), i = to_scalar_id(item, "item");
            const float y = label.is_none() ? 1.0f : static_cast<float>(number(label, "label"));
            const float w = static_cast<float>(number(weight_arg, "weight"));
            const double t = timestamp.is_none() ? 0.0 : number(timestamp, "timestamp");
            rtrec::EventBatch b;
            b.users = IdBatch{&u.key, u.name ? &*u.name : nullptr, 1};
            b.items = IdBatch{&i.key, i.name ? &*i.name : nullptr, 1};
            b.labels = label.is_none() ? nullptr : &y;
            b.weights = &w;
            b.timestamps = timestamp.is_none() ? nullptr : &t;
            b.size = 1;
            py::gil_scoped_release release;
            model.update(b);
          },
          py::arg("user"), py::arg("item"), py::arg("label") = py::none(), py::arg("weight") = py::float_(1.0),
          py::arg("timestamp") = py::none())
      .def(
          "predict",
          [](const Model& model, py::handle users, py::handle items, int num_threads) {
            const Ids u = to_ids(users, "users"), i = to_ids(items, "items");
            if (u.batch.size != i.batch.size) throw py::value_error("users and items differ in length");
            py::array_t<float> out(u.batch.size);
            float* p = out.mutable_data();
            {
              py::gil_scoped_release release;
              model.predict(u.batch, i.batch, p, num_threads);
            }
            return out;
          },
          py::arg("users"), py::arg("items"), py::arg("num_threads"))
      .def(
          "recommend",
          [](const Model& model, py::handle user, uint64_t k, bool exclude_seen, int num_threads, double diversity,
             py::handle allow, py::handle deny, py::handle tags) {
            if (k == 0) throw py::value_error("k must be >= 1");
            rtrec::check_diversity(diversity);  // before narrowing to float
            const ScalarId u = to_scalar_id(user, "user");
            const Filter filter = to_filter(allow, deny, tags);
            RankedList list(model, k);
            released([&] {
              list.found = model.recommend(u.key, u.name ? &*u.name : nullptr, list.capacity(), exclude_seen,
                                           num_threads, list.out(), static_cast<float>(diversity), filter.view(),
                                           &list.info);
            });
            return list.to_python();
          },
          py::arg("user"), py::arg("k"), py::arg("exclude_seen"), py::arg("num_threads"), py::arg("diversity") = 0.0,
          py::arg("items") = py::none(), py::arg("exclude") = py::none(), py::arg("tags") = py::none())
      .def(
          "recommend_batch",
          [](const Model& model, py::handle users, uint64_t k, bool exclude_seen, int num_threads, double diversity,
             py::handle allow, py::handle deny, py::handle tags) {
            if (k == 0) throw py::value_error("k must be >= 1");
            rtrec::check_diversity(diversity);
            const Ids u = to_ids(users, "users");
            const Filter filter = to_filter(allow, deny, tags);
            RankedBatch batch(model, u.batch.size, k);
            released([&] {
              model.recommend_batch(u.batch, batch.width, exclude_seen, num_threads, batch.out(),
                                    batch.counts.mutable_data(), static_cast<float>(diversity), filter.view(),
                                    &batch.info);
            });
            return batch.to_python();
          },
          py::arg("users"), py::arg("k"), py::arg("exclude_seen"), py::arg("num_threads"), py::arg("diversity") = 0.0,
          py::arg("items") = py::none(), py::arg("exclude") = py::none(), py::arg("tags") = py::none())
      .def(
          "recommend_for_history",
          [](const Model& model, py::handle history, std::optional<FloatArray> weights, uint64_t k, bool exclude_history,
             int num_threads, double diversity, py::handle allow, py::handle deny, py::handle tags) {
            if (k == 0) throw py::value_error("k must be >= 1");
            rtrec::check_diversity(diversity);
            const Ids h = to_ids(history, "history");
            if (weights && (weights->ndim() != 1 || static_cast<size_t>(weights->shape(0)) != h.batch.size))
              throw py::value_error("weights: expected one weight per history item");
            const Filter filter = to_filter(allow, deny, tags);
            RankedList list(model, k);
            released([&] {
              list.found = model.recommend_for_history(h.batch, weights ? weights->data() : nullptr, list.capacity(),
                                                       exclude_history, num_threads, list.out(),
                                                       static_cast<float>(diversity), filter.view(), &list.info);
            });
            return list.to_python();
          },
          py::arg("history"), py::arg("weights"), py::arg("k"), py::arg("exclude_history"), py::arg("num_threads"),
          py::arg("diversity") = 0.0, py::arg("items") = py::none(), py::arg("exclude") = py::none(),
          py::arg("tags") = py::none())
      .def(
          "similar_items",
          [](const Model& model, py::handle items, uint64_t k, int num_threads, py::handle allow, py::handle deny,
             py::handle tags) {
            if (k == 0) throw py::value_error("k must be >= 1");
            const Ids i = to_ids(items, "items");
            const Filter filter = to_filter(allow, deny, tags);
            RankedBatch batch(model, i.batch.size, k);
            released([&] {
              model.similar_items_batch(i.batch, batch.width, num_threads, batch.out(), batch.counts.mutable_data(),
                                        filter.view(), &batch.info);
            });
            return batch.to_python();
          },
          py::arg("items"), py::arg("k"), py::arg("num_threads"), py::arg("allow") = py::none(),
          py::arg("exclude") = py::none(), py::arg("tags") = py::none())
      .def(
          "knows_user",
          [](const Model& model, py::handle user) {
            const ScalarId u = to_scalar_id(user, "user");
            return model.knows_user(u.key, u.name ? &*u.name : nullptr);
          },
          py::arg("user"))
      .def(
          "hide",
          [](Model& model, py::handle items, bool hidden) {
            const Ids i = to_ids(items, "items");
            Model::HideResult r{0, 0};
            {
              py::gil_scoped_release release;
              r = model.hide(i.batch, hidden);
            }
            return py::make_tuple(r.changed, r.unknown);
          },
          py::arg("items"), py::arg("hidden"))
      .def(
          "hidden",
          [](const Model& model, py::handle items) {
            const Ids i = to_ids(items, "items");
            py::array_t<uint8_t> flags(i.batch.size);
            {
              py::gil_scoped_release release;
              model.hidden_flags(i.batch, flags.mutable_data());
            }
            return flags;
          },
          py::arg("items"))
      .def(
          "explain",
          [](const Model& model, py::handle user, py::handle item, uint64_t n) {
            if (n == 0) throw py::value_error("n must be >= 1");
            const ScalarId u = to_scalar_id(user, "user"), i = to_scalar_id(item, "item");
            std::vector<Model::Reason> reasons;
            {
              py::gil_scoped_release release;
              try {
                reasons = model.explain(u.key, u.name ? &*u.name : nullptr, i.key, i.name ? &*i.name : nullptr,
                                        static_cast<uint32_t>(std::min<uint64_t>(n, std::numeric_limits<uint32_t>::max())));
              } catch (const std::out_of_range& e) {
                py::gil_scoped_acquire acquire;
                throw py::key_error(e.what());
              }
            }
            const bool strings = model.items().kind() == IdKind::kString;
            py::list out;
            for (const Model::Reason& r : reasons) {
              py::dict d;
              if (r.feature)
                d["feature"] = py::str(r.name);
              else if (strings)
                d["item"] = py::str(r.name);
              else
                d["item"] = static_cast<int64_t>(r.key);
              d["weight"] = r.weight;
              out.append(std::move(d));
            }
            return out;
          },
          py::arg("user"), py::arg("item"), py::arg("n"))
      .def(
          "set_features",
          [](Model& model, bool items, py::handle ids, const py::list& features) {
            const Ids i = to_ids(ids, items ? "items" : "users");
            // Types were checked in Python (lists of str); converted here without the GIL held
            // by the core call only.
            std::vector<std::vector<std::string>> lists;
            lists.reserve(features.size());
            for (const py::handle row : features) {
              std::vector<std::string> names;
              for (const py::handle f : py::reinterpret_borrow<py::list>(row)) names.push_back(utf8(f, "features"));
              lists.push_back(std::move(names));
            }
            py::gil_scoped_release release;
            model.set_features(items, i.batch, lists);
          },
          py::arg("items"), py::arg("ids"), py::arg("features"))
      .def(
          "features_of",
          [](const Model& model, bool items, py::handle id) {
            const ScalarId i = to_scalar_id(id, items ? "item" : "user");
            std::vector<std::string> out;
            {
              py::gil_scoped_release release;
              out = model.features_of(items, i.key, i.name ? &*i.name : nullptr);
            }
            return out;
          },
          py::arg("items"), py::arg("id"))
      .def(
          "set_item_names",
          [](Model& model, py::handle ids, const py::list& names) {
            const Ids i = to_ids(ids, "items");
            std::vector<std::string> text;
            text.reserve(names.size());
            for (const py::handle n : names) {
              if (!PyUnicode_Check(n.ptr())) throw py::type_error("names: expected a list of str");
              text.push_back(utf8(n, "names"));
            }
            py::gil_scoped_release release;
            model.set_item_names(i.batch, text);
          },
          py::arg("ids"), py::arg("names"))
      .def(
          "item_names",
          [](const Model& model, py::handle ids) {
            const Ids i = to_ids(ids, "items");
            std::vector<std::pair<bool, std::string>> found;
            {
              py::gil_scoped_release release;
              found = model.item_names(i.batch);
            }
            py::list out(found.size());
            for (size_t k = 0; k < found.size(); ++k)
              out[k] = found[k].first ? py::object(py::str(found[k].second)) : py::object(py::none());
            return out;
          },
          py::arg("ids"))
      .def(
          "evict_before",
          [](Model& model, double cutoff) {
            py::gil_scoped_release release;
            return model.evict_before(cutoff);
          },
          py::arg("cutoff"))
      .def_property_readonly("clock", &Model::clock)
      .def(
          "save",
          [](const Model& model, const std::string& path) {
            py::gil_scoped_release release;
            rtrec::save_snapshot(model, path);
          },
          py::arg("path"))
      .def(
          "save_delta",
          [](const Model& model, const std::string& path) {
            py::gil_scoped_release release;
            rtrec::save_delta(model, path);
          },
          py::arg("path"))
      .def(
          "apply_delta",
          [](Model& model, const std::string& path) {
            py::gil_scoped_release release;
            rtrec::apply_delta(model, path);
          },
          py::arg("path"))
      .def(
          "vectors",
          [](const Model& model, bool items, py::handle ids) {
            Model::Vectors v;
            {
              std::optional<Ids> wanted;
              if (!ids.is_none()) wanted = to_ids(ids, items ? "items" : "users");
              py::gil_scoped_release release;
              try {
                v = model.export_vectors(items, wanted ? &wanted->batch : nullptr);
              } catch (const std::out_of_range& e) {
                py::gil_scoped_acquire acquire;
                throw py::key_error(e.what());
              }
            }
            const size_t n = v.keys.size(), dim = model.config().dim;
            py::array_t<float> values({n, dim});
            std::copy(v.values.begin(), v.values.end(), values.mutable_data());
            py::array_t<float> biases(n);
            std::copy(v.biases.begin(), v.biases.end(), biases.mutable_data());
            const bool strings = (items ? model.items() : model.users()).kind() == IdKind::kString;
            return py::make_tuple(ids_of(v.keys.data(), strings ? v.names.data() : nullptr, n), values, biases);
          },
          py::arg("items"), py::arg("ids"))
      .def_property(
          "source_position", &Model::source_position,
          [](Model& model, const std::string& position) { model.set_source_position(position); })
      .def_property_readonly("lineage", &Model::lineage)
      .def_property_readonly("change_count", &Model::change_count)
      .def_property_readonly("sequence", &Model::sequence)
      .def_static(
          "load",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return rtrec::load_snapshot(path);
          },
          py::arg("path"))
      .def_property_readonly("config", [](const Model& m) { return config_to_dict(m.config()); })
      .def_property_readonly("n_users", [](const Model& m) { return m.users().live_count(); })
      .def_property_readonly("n_items", [](const Model& m) { return m.items().live_count(); })
      .def_property_readonly("user_id_kind", [](const Model& m) { return kind_name(m.users().kind()); })
      .def_property_readonly("item_id_kind", [](const Model& m) { return kind_name(m.items().kind()); })
      .def("stats", [](const Model& m) {
        const rtrec::ModelStats s = m.stats();
        py::dict d;
        d["n_users"] = s.n_users;
        d["n_items"] = s.n_items;
        d["updates"] = s.updates;
        d["skipped_updates"] = s.skipped_updates;
        d["seen_pairs"] = s.seen_pairs;
        d["memory_bytes"] = s.memory_bytes;
        d["not_admitted"] = s.not_admitted;
        d["deduplicated"] = s.deduplicated;
        d["rate_limited"] = s.rate_limited;
        d["global_bias"] = s.global_bias;
        d["evicted_users"] = s.evicted_users;
        d["evicted_items"] = s.evicted_items;
        d["n_user_features"] = s.n_user_features;
        d["n_item_features"] = s.n_item_features;
        d["clock"] = s.clock;
        d["hidden_items"] = s.hidden_items;
        d["unknown_filter_ids"] = s.unknown_filter_ids;
        d["item_names"] = s.item_names;
        d["compact_bytes"] = m.compact_bytes();  // retrieval="compact": the int8 item shadow
        return d;
      });
}
