// The binding, the only code that knows about Python (this file defines the module; the
// conversions it includes, convert.hpp and params.hpp, are part of it): converts and checks
// arguments, releases the GIL around every core call, and returns numpy arrays. Defaults, limits and rules are the
// core's (config.hpp), exported here as they are; none are decided here.
// C++ exceptions map to Python ones by pybind11's rules: std::invalid_argument and
// std::length_error -> ValueError, std::bad_alloc -> MemoryError; the core's own exception
// types are registered below (IdKindError -> TypeError, the snapshot errors).
#include <optional>
#include <string>
#include <vector>

#include "convert.hpp"  // IDs, arrays, batches, filters, ranked results, released()
#include "params.hpp"   // ModelConfig <-> dicts, the parameter table
#include "rtrec/snapshot.hpp"

using namespace rtrec_binding;

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
  m.def(
      "partition_of",
      [](const py::object& users, uint32_t partitions) {
        if (partitions == 0 || partitions > rtrec::kMaxPartitions)
          throw py::value_error("partitions must be between 1 and " + std::to_string(rtrec::kMaxPartitions) + ", got " +
                                std::to_string(partitions));
        const Ids ids = to_ids(users, "users");
        py::array_t<uint32_t> out(ids.batch.size);
        uint32_t* p = out.mutable_data();
        for (size_t i = 0; i < ids.batch.size; ++i) p[i] = rtrec::partition_of(ids.batch.keys[i], partitions);
        return out;
      },
      py::arg("users"), py::arg("partitions"),
      "The partition of each user key (uint64 keys or a list of str) among `partitions` (the core's rule).");
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
    limits["max_filter_ids"] = rtrec::kMaxFilterIds;
    limits["max_filter_tags"] = rtrec::kMaxFilterTags;
    limits["max_query_history"] = rtrec::kMaxQueryHistory;
    limits["max_partitions"] = rtrec::kMaxPartitions;
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
      .def("shared_rows",
           [](const Model& m) {
             Model::SharedRows s;
             {
               py::gil_scoped_release release;
               s = m.shared_rows();
             }
             return shared_to_dict(s, m.shared_record_width(false), m.shared_record_width(true));
           })
      .def("shared_increment",
           [](const Model& m, const py::dict& base) {
             const Model::SharedRows b = shared_from_dict(base);
             Model::SharedRows s;
             {
               py::gil_scoped_release release;
               s = m.shared_increment(b);
             }
             return shared_to_dict(s, m.shared_record_width(false), m.shared_record_width(true));
           },
           py::arg("base"))
      .def("add_shared",
           [](Model& m, const py::dict& increment) {
             const Model::SharedRows inc = shared_from_dict(increment);
             py::gil_scoped_release release;
             m.add_shared(inc);
           },
           py::arg("increment"))
      .def("reset_shared_base",
           [](Model& m) {
             py::gil_scoped_release release;
             m.reset_shared_base();
           })
      .def("take_shared_increment",
           [](Model& m) {
             Model::SharedRows s;
             {
               py::gil_scoped_release release;
               s = m.take_shared_increment();
             }
             return shared_to_dict(s, m.shared_record_width(false), m.shared_record_width(true));
           })
      .def("add_to_shared_base",
           [](Model& m, const py::dict& increment) {
             const Model::SharedRows inc = shared_from_dict(increment);
             py::gil_scoped_release release;
             m.add_to_shared_base(inc);
           },
           py::arg("increment"))
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
