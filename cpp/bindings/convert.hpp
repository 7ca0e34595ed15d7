// Part of the binding (included by module.cpp only, so the module stays one translation unit
// and the only code that knows Python): IDs, arrays, event batches, filters and ranked
// results between Python objects and the core's types, and the GIL released around core calls.
#pragma once

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

namespace rtrec_binding {
namespace py = pybind11;
using rtrec::IdBatch;
using rtrec::IdKind;
using rtrec::Model;


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

// ---- shared rows (Model::SharedRows) <-> a dict of numpy arrays: item_keys (uint64, or
// item_names for string IDs), items (rows x record width, float32), feature_names, features,
// tower (float32), label_sum and weight_sum.
inline py::dict shared_to_dict(const Model::SharedRows& s, uint32_t width, uint32_t feature_width) {
  py::dict d;
  d["item_keys"] = py::array_t<uint64_t>(s.item_keys.size(), s.item_keys.data());
  d["item_names"] = s.item_names.empty() ? py::object(py::none()) : py::object(py::cast(s.item_names));
  py::array_t<float> items({s.item_keys.size(), size_t(width)});
  std::copy(s.items.begin(), s.items.end(), items.mutable_data());
  d["items"] = items;
  d["feature_names"] = py::cast(s.feature_names);
  py::array_t<float> features({s.feature_names.size(), size_t(feature_width)});
  std::copy(s.features.begin(), s.features.end(), features.mutable_data());
  d["features"] = features;
  d["tower"] = py::array_t<float>(s.tower.size(), s.tower.data());
  d["label_sum"] = s.label_sum;
  d["weight_sum"] = s.weight_sum;
  return d;
}

inline Model::SharedRows shared_from_dict(const py::dict& d) {
  for (const char* key : {"item_keys", "item_names", "items", "feature_names", "features", "tower", "label_sum", "weight_sum"})
    if (!d.contains(key)) throw py::key_error(std::string("shared rows need '") + key + "'");
  Model::SharedRows s;
  const KeyArray keys = py::cast<KeyArray>(d["item_keys"]);
  s.item_keys.assign(keys.data(), keys.data() + keys.size());
  if (!d["item_names"].is_none()) s.item_names = d["item_names"].cast<std::vector<std::string>>();
  const FloatArray items = py::cast<FloatArray>(d["items"]);
  s.items.assign(items.data(), items.data() + items.size());
  s.feature_names = d["feature_names"].cast<std::vector<std::string>>();
  const FloatArray features = py::cast<FloatArray>(d["features"]);
  s.features.assign(features.data(), features.data() + features.size());
  const FloatArray tower = py::cast<FloatArray>(d["tower"]);
  s.tower.assign(tower.data(), tower.data() + tower.size());
  s.label_sum = d["label_sum"].cast<double>();
  s.weight_sum = d["weight_sum"].cast<double>();
  return s;
}

}  // namespace rtrec_binding
