import KilnIR

/// Keras 3 optimizers as primitives: given each trainable weight and its
/// gradient, appends the update and returns (state param, new value) pairs
/// for the caller to assign once everything is computed.
public enum Optimizers {
    public static func update(_ cfg: OptimizerConfig, params: [Value], grads: [Value], _ b: inout PrimBuilder) throws -> [(Value, Value)] {
        b.layer = "optimizer"
        var grads = try clip(cfg, grads, &b)
        var assigns: [(Value, Value)] = []
        let lr = cfg.learningRate
        // Where each slot sits among Keras' saved variables, when resuming.
        let layout = try resumeLayout(cfg, params: params, &b)
        func slot(_ w: Value, _ suffix: String, _ initial: Float = 0) -> Value {
            let t = b.type(w)
            let name = b.graph.info(w).name
            let values = layout[name + "/" + suffix] ?? Array(repeating: initial, count: t.staticCount)
            return b.graph.addParam("optimizer/\(name)/\(suffix)", t, initial: values,
                                    trainable: false, role: .slot)
        }
        func scalarSlot(_ name: String, _ initial: Float) -> Value {
            b.graph.addParam("optimizer/\(name)", .f32([]), initial: layout[name] ?? [initial], trainable: false, role: .slot)
        }
        // The 1-based step number continues from the steps Keras already took.
        var t = try b.p(.iteration)
        if let r = cfg.resume, r.iterations > 0 { t = try b.add(t, Float(r.iterations)) }
        // Nadam's running product of momentum-schedule values, updated once per step.
        var nadam: (uT: Value, uT1: Value, prodT: Value, prodT1: Value)? = nil
        if cfg.name == "Nadam" {
            let beta1 = cfg.setting("beta_1", 0.9)
            func u(_ step: Value) throws -> Value {
                try b.mul(try b.sub(try b.const(1), try b.mul(try b.binary(.pow, try b.const(0.96), step), 0.5)), beta1)
            }
            let prod = scalarSlot("u_product", 1)
            let uT = try u(t), uT1 = try u(try b.add(t, 1))
            let prodT = try b.mul(prod, uT)
            assigns.append((prod, prodT))
            nadam = (uT, uT1, prodT, try b.mul(prodT, uT1))
        }
        for (wState, g) in zip(params, grads) {
            // Keras decays the variable (w -= w * wd * lr) before the update proper.
            var w = wState
            if let wd = cfg.weightDecay, wd != 0 { w = try b.sub(w, try b.mul(w, wd * lr)) }
            var pending: [(Value, Value)] = []
            defer { assigns.append(contentsOf: pending.map { $0.0 == w ? (wState, $0.1) : $0 }) }
            func assign(_ p: Value, _ v: Value) { pending.append((p, v)) }
            switch cfg.name == "AdamW" ? "Adam" : cfg.name {
            case "SGD":
                let mom = cfg.setting("momentum", 0)
                if mom == 0 {
                    assign(w, try b.sub(w, try b.mul(g, lr)))
                } else {
                    let m = slot(wState, "momentum")
                    let mNew = try b.sub(try b.mul(m, mom), try b.mul(g, lr))
                    assign(m, mNew)
                    if cfg.flag("nesterov") {
                        assign(w, try b.add(w, try b.sub(try b.mul(mNew, mom), try b.mul(g, lr))))
                    } else {
                        assign(w, try b.add(w, mNew))
                    }
                }
            case "RMSprop":
                let rho = cfg.setting("rho", 0.9), eps = cfg.setting("epsilon", 1e-7), mom = cfg.setting("momentum", 0)
                let v = slot(wState, "velocity")
                let vNew = try b.add(try b.mul(v, rho), try b.mul(try b.unary(.square, g), 1 - rho))
                assign(v, vNew)
                var denom = try b.add(vNew, eps)
                if cfg.flag("centered") {
                    let a = slot(wState, "average_gradient")
                    let aNew = try b.add(try b.mul(a, rho), try b.mul(g, 1 - rho))
                    assign(a, aNew)
                    denom = try b.add(try b.sub(vNew, try b.unary(.square, aNew)), eps)
                }
                let inc = try b.div(try b.mul(g, lr), try b.unary(.sqrt, denom))
                if mom > 0 {
                    let m = slot(wState, "momentum")
                    let mNew = try b.add(try b.mul(m, mom), inc)
                    assign(m, mNew)
                    assign(w, try b.sub(w, mNew))
                } else {
                    assign(w, try b.sub(w, inc))
                }
            case "Adagrad":
                let eps = cfg.setting("epsilon", 1e-7)
                let acc = slot(wState, "accumulator", cfg.setting("initial_accumulator_value", 0.1))
                let accNew = try b.add(acc, try b.unary(.square, g))
                assign(acc, accNew)
                assign(w, try b.sub(w, try b.div(try b.mul(g, lr), try b.unary(.sqrt, try b.add(accNew, eps)))))
            case "Adadelta":
                let rho = cfg.setting("rho", 0.95), eps = cfg.setting("epsilon", 1e-7)
                let ag = slot(wState, "accumulated_grad"), ad = slot(wState, "accumulated_delta_var")
                let agNew = try b.add(try b.mul(ag, rho), try b.mul(try b.unary(.square, g), 1 - rho))
                assign(ag, agNew)
                let delta = try b.unary(.neg, try b.div(try b.mul(try b.unary(.sqrt, try b.add(ad, eps)), g),
                                                       try b.unary(.sqrt, try b.add(agNew, eps))))
                assign(ad, try b.add(try b.mul(ad, rho), try b.mul(try b.unary(.square, delta), 1 - rho)))
                assign(w, try b.add(w, try b.mul(delta, lr)))
            case "Adam":
                let b1 = cfg.setting("beta_1", 0.9), b2 = cfg.setting("beta_2", 0.999), eps = cfg.setting("epsilon", 1e-7)
                let m = slot(wState, "momentum"), v = slot(wState, "velocity")
                let p1 = try b.binary(.pow, try b.const(b1), t), p2 = try b.binary(.pow, try b.const(b2), t)
                let alpha = try b.div(try b.mul(try b.unary(.sqrt, try b.sub(try b.const(1), p2)), lr), try b.sub(try b.const(1), p1))
                let mNew = try b.add(m, try b.mul(try b.sub(g, m), 1 - b1))
                var vNew = try b.add(v, try b.mul(try b.sub(try b.unary(.square, g), v), 1 - b2))
                assign(m, mNew); assign(v, vNew)
                if cfg.flag("amsgrad") {
                    let vh = slot(wState, "velocity_hat")
                    vNew = try b.binary(.max, vh, vNew)
                    assign(vh, vNew)
                }
                assign(w, try b.sub(w, try b.div(try b.mul(mNew, alpha), try b.add(try b.unary(.sqrt, vNew), eps))))
            case "Adamax":
                let b1 = cfg.setting("beta_1", 0.9), b2 = cfg.setting("beta_2", 0.999), eps = cfg.setting("epsilon", 1e-7)
                let m = slot(wState, "m"), u = slot(wState, "u")
                let p1 = try b.binary(.pow, try b.const(b1), t)
                let mNew = try b.add(m, try b.mul(try b.sub(g, m), 1 - b1))
                let uNew = try b.binary(.max, try b.mul(u, b2), try b.unary(.abs, g))
                assign(m, mNew); assign(u, uNew)
                let den = try b.mul(try b.sub(try b.const(1), p1), try b.add(uNew, eps))
                assign(w, try b.sub(w, try b.div(try b.mul(mNew, lr), den)))
            case "Nadam":
                let (uT, uT1, prodT, prodT1) = nadam!
                let b1 = cfg.setting("beta_1", 0.9), b2 = cfg.setting("beta_2", 0.999), eps = cfg.setting("epsilon", 1e-7)
                _ = b1
                let m = slot(wState, "momentum"), v = slot(wState, "velocity")
                let mNew = try b.add(m, try b.mul(try b.sub(g, m), 1 - b1))
                let vNew = try b.add(v, try b.mul(try b.sub(try b.unary(.square, g), v), 1 - b2))
                assign(m, mNew); assign(v, vNew)
                let one = try b.const(1)
                let mHat = try b.add(try b.div(try b.mul(uT1, mNew), try b.sub(one, prodT1)),
                                     try b.div(try b.mul(try b.sub(one, uT), g), try b.sub(one, prodT)))
                let vHat = try b.div(vNew, try b.sub(one, try b.binary(.pow, try b.const(b2), t)))
                assign(w, try b.sub(w, try b.div(try b.mul(mHat, lr), try b.add(try b.unary(.sqrt, vHat), eps))))
            default:
                throw ShapeError(layer: "optimizer", "optimizer '\(cfg.name)' is not supported")
            }
        }
        grads = []
        return assigns
    }

    /// Keras' slot groups per optimizer: each group is one `add_optimizer_variables`
    /// call, which interleaves its names per trainable variable; groups follow each other.
    public static func kerasSlotGroups(_ cfg: OptimizerConfig) -> (groups: [[String]], scalars: [String]) {
        switch cfg.name {
        case "SGD": return (cfg.setting("momentum", 0) == 0 ? [] : [["momentum"]], [])
        case "RMSprop":
            var g = [["velocity"]]
            if cfg.setting("momentum", 0) > 0 { g.append(["momentum"]) }
            if cfg.flag("centered") { g.append(["average_gradient"]) }
            return (g, [])
        case "Adagrad": return ([["accumulator"]], [])
        case "Adadelta": return ([["accumulated_grad", "accumulated_delta_var"]], [])
        case "Adam", "AdamW": return ([["momentum", "velocity"]] + (cfg.flag("amsgrad") ? [["velocity_hat"]] : []), [])
        case "Adamax": return ([["m", "u"]], [])
        case "Nadam": return ([["momentum", "velocity"]], ["u_product"])
        default: return ([], [])
        }
    }

    /// Maps "weightName/slot" (and scalar names) to Keras' saved values; empty when not resuming.
    /// Refuses saved variables whose count or sizes do not match the slots Kiln uses.
    static func resumeLayout(_ cfg: OptimizerConfig, params: [Value], _ b: inout PrimBuilder) throws -> [String: [Float]] {
        guard let r = cfg.resume else { return [:] }
        let (groups, scalars) = kerasSlotGroups(cfg)
        let expected = groups.reduce(0) { $0 + $1.count * params.count } + scalars.count
        guard r.slots.count == expected else {
            throw ShapeError(layer: "optimizer", "the model file holds \(r.slots.count) saved \(cfg.name) slot variables but Kiln's \(cfg.name) with these settings has \(expected) for \(params.count) trainable weights, so training cannot resume from them")
        }
        var out: [String: [Float]] = [:]
        var k = 0
        for group in groups {
            for w in params {
                let name = b.graph.info(w).name
                let count = b.type(w).staticCount
                for suffix in group {
                    guard r.slots[k].count == count else {
                        throw ShapeError(layer: "optimizer", "saved optimizer variable \(k + 2) has \(r.slots[k].count) values but the \(suffix) slot of '\(name)' has \(count), so training cannot resume from it")
                    }
                    out[name + "/" + suffix] = r.slots[k]; k += 1
                }
            }
        }
        for name in scalars {
            guard r.slots[k].count == 1 else {
                throw ShapeError(layer: "optimizer", "saved optimizer variable \(k + 2) has \(r.slots[k].count) values but \(cfg.name)'s \(name) is one number, so training cannot resume from it")
            }
            out[name] = r.slots[k]; k += 1
        }
        return out
    }

    /// clipnorm (per gradient), global_clipnorm, clipvalue: Keras applies the first that is set.
    static func clip(_ cfg: OptimizerConfig, _ grads: [Value], _ b: inout PrimBuilder) throws -> [Value] {
        func sumSquares(_ g: Value) throws -> Value {
            try b.reduce(.sum, try b.unary(.square, g), axes: Array(0..<b.type(g).rank))
        }
        if let c = cfg.clipnorm, c > 0 {
            return try grads.map { g in
                let norm = try b.unary(.sqrt, try sumSquares(g))
                return try b.div(try b.mul(g, c), try b.binary(.max, norm, try b.const(c)))
            }
        }
        if let c = cfg.globalClipnorm, c > 0 {
            var total = try sumSquares(grads[0])
            for g in grads.dropFirst() { total = try b.add(total, try sumSquares(g)) }
            let norm = try b.unary(.sqrt, total)
            let scale = try b.mul(try b.binary(.min, try b.unary(.reciprocal, norm), try b.const(1 / c)), c)
            return try grads.map { try b.mul($0, scale) }
        }
        if let v = cfg.clipvalue, v > 0 {
            return try grads.map { try b.binary(.min, try b.binary(.max, $0, try b.const(-v)), try b.const(v)) }
        }
        return grads
    }
}
