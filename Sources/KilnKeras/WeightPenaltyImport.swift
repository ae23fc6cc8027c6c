// Reading Keras' weight regularizers and constraints, and activity regularizers, from any
// layer's config: `<weight>_regularizer` / `<weight>_constraint` (recurrent_kernel's keys are
// `recurrent_regularizer` / `recurrent_constraint`; a wrapper's weights read its wrapped
// layer's config), and `activity_regularizer`. One generic rule for every layer, legacy or
// of the layer table; what Kiln cannot honour is refused in one sentence.

import KilnIR
import KilnLayers
import KilnSupport

extension KerasGraphBuilder {
    /// The config holding a weight's keys and the keys' stem ("kernel", "recurrent", "gamma").
    static func penaltySource(_ c: Context, weight: String) -> (JSON, String) {
        var cfg = c.config, w = weight
        func nested(_ key: String) -> JSON? {
            guard let j = c.config[key], !j.isNull else { return nil }
            return j["config"]
        }
        switch c.layer.className {
        case "Bidirectional":
            if w.hasPrefix("forward_") { w.removeFirst("forward_".count); cfg = nested("layer") ?? cfg }
            else if w.hasPrefix("backward_") { w.removeFirst("backward_".count); cfg = nested("backward_layer") ?? nested("layer") ?? cfg }
        case "TimeDistributed":
            cfg = nested("layer") ?? cfg
        default: break
        }
        return (cfg, w == "recurrent_kernel" ? "recurrent" : w)
    }

    /// The regularizer and constraint of each weight, in order; refuses such keys Kiln would
    /// otherwise ignore (a nested activity_regularizer, a key naming no weight of the layer).
    static func penalties(_ c: Context, weights: [String]) throws -> [(Regularizer?, Constraint?)] {
        var used: [String: Set<String>] = [:]   // config identity (its serialization) -> keys read
        var out: [(Regularizer?, Constraint?)] = []
        for w in weights {
            let (cfg, stem) = penaltySource(c, weight: w)
            let r = try Regularizer.parse(cfg["\(stem)_regularizer"]) { c.fail("uses \(stem)_regularizer \($0)") }
            let k = try Constraint.parse(cfg["\(stem)_constraint"]) { c.fail("uses \(stem)_constraint \($0)") }
            used[cfg.serialized, default: []].formUnion(["\(stem)_regularizer", "\(stem)_constraint"])
            out.append((r, k))
        }
        // Every config involved: the layer's and its wrapped layers'.
        var configs = [("", c.config)]
        for key in ["layer", "backward_layer"] {
            if let j = c.config[key], !j.isNull, let inner = j["config"] { configs.append((" (in its wrapped \(j["class_name"]?.string ?? "layer"))", inner)) }
        }
        // Optional weights a config may name without having them (use_bias=False, center=False):
        // Keras ignores those keys too.
        let optional: Set<String> = ["bias", "beta", "gamma"]
        for (place, cfg) in configs {
            guard case let .object(pairs) = cfg else { continue }
            for (key, v) in pairs where !v.isNull && (key.hasSuffix("_regularizer") || key.hasSuffix("_constraint")) {
                if key == "activity_regularizer" && place.isEmpty { continue }
                if used[cfg.serialized]?.contains(key) == true { continue }
                let stem = String(key[..<key.lastIndex(of: "_")!])
                if optional.contains(stem) { continue }
                throw c.fail("has \(key)\(place) \(v["class_name"]?.string ?? v.serialized), which Kiln does not support for this layer")
            }
        }
        return out
    }

    /// The layer's activity regularizer (Keras divides its penalty by the batch size), if any.
    static func activityRegularizer(_ c: Context) throws -> ActivityRegularizationKind? {
        guard let r = try Regularizer.parse(c.config["activity_regularizer"], fail: {
            c.fail("uses activity_regularizer \($0)")
        }) else { return nil }
        return ActivityRegularizationKind(l1: r.l1, l2: r.l2)
    }
}

extension KerasGraphBuilder.Builder {
    /// Sets the regularizers and constraints of a layer's new parameters (one per weight name).
    mutating func attachPenalties(_ c: KerasGraphBuilder.Context, params: [Value], weights: [String]) throws {
        let p = try KerasGraphBuilder.penalties(c, weights: weights)
        for (v, (r, k)) in zip(params, p) {
            guard case .param(let i) = graph.info(v).source else { continue }
            if let k, k.resolvedAxes(rank: graph.type(v).rank) == nil {
                throw c.fail("has a constraint \(k) on weight '\(graph.info(v).name)' of shape \(graph.type(v).kerasDescription), whose rank has no such axis")
            }
            graph.params[i].regularizer = r
            graph.params[i].constraint = k
        }
    }

    /// Keras' `activity_regularizer` on a layer: an ActivityRegularization after each output.
    mutating func applyActivityRegularizer(_ c: KerasGraphBuilder.Context, _ outs: [Value]) throws -> [Value] {
        guard let kind = try KerasGraphBuilder.activityRegularizer(c) else { return outs }
        return try outs.map { v in
            guard graph.type(v).dtype == .f32 else { return v }
            return try graph.add(.layer(kind.op), [v], layer: c.layer.name)[0]
        }
    }
}
