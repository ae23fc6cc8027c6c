// The textual form of a graph, for --print-after and golden tests:
//
//   graph mlp(%0: f32[N, 4] "x") params(%1: f32[4, 8] "dense/kernel")
//     %2 = matmul %0, %1                         ; dense
//     return %2 "dense"

extension LayerOp: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .dense(u, a, b): return "dense<units=\(u), \(a.rawValue)\(b ? "" : ", no_bias")>"
        case let .conv2D(f, k, s, p, a, b):
            return "conv2d<filters=\(f), kernel=\(k), strides=\(s), \(p.rawValue), \(a.rawValue)\(b ? "" : ", no_bias")>"
        case let .maxPool2D(k, s, p): return "max_pool2d<\(k), strides=\(s), \(p.rawValue)>"
        case let .avgPool2D(k, s, p): return "avg_pool2d<\(k), strides=\(s), \(p.rawValue)>"
        case .globalAvgPool2D: return "global_avg_pool2d"
        case .globalMaxPool2D: return "global_max_pool2d"
        case let .relu(m, s, t): return "relu<max=\(m.map { "\($0)" } ?? "none"), slope=\(s), threshold=\(t)>"
        case .prelu: return "prelu"
        case .flatten: return "flatten"
        case .reshape(let t): return "reshape<\(t)>"
        case .dropout(let r): return "dropout<\(r)>"
        case let .activation(a, alpha): return "activation<\(a.rawValue)\(alpha != 0 ? ", alpha=\(alpha)" : "")>"
        case let .embedding(i, o, m): return "embedding<\(i), \(o)\(m ? ", mask_zero" : "")>"
        case .concatenate(let a): return "concatenate<axis=\(a)>"
        case .add: return "add"
        case let .recurrent(s, m): return "\(s.kind.rawValue.lowercased())<\(s.units)\(s.returnSequences ? ", sequences" : "")\(s.goBackwards ? ", backwards" : "")\(s.returnState ? ", state" : "")\(m ? ", masked" : "")>"
        case let .bidirectional(f, _, merge, m): return "bidirectional<\(f.kind.rawValue.lowercased()) \(f.units), \(merge.rawValue)\(f.returnSequences ? ", sequences" : "")\(f.returnState ? ", state" : "")\(m ? ", masked" : "")>"
        case .timeDistributed(let inner): return "time_distributed<\(inner)>"
        case .masking(let v): return "masking<\(v)>"
        }
    }
}

extension Window2D: CustomStringConvertible {
    public var description: String {
        var s = "\(kh)x\(kw)"
        if sh != 1 || sw != 1 { s += "/\(sh)x\(sw)" }
        if padTop != 0 || padLeft != 0 { s += " pad \(padTop),\(padLeft)" }
        return s
    }
}

extension PrimOp: CustomStringConvertible {
    public var description: String {
        switch self {
        case .unary(let u): return u.rawValue
        case .binary(let b): return b.rawValue
        case .compare(let c): return "cmp_\(c.rawValue)"
        case .select: return "select"
        case .cast(let t): return "cast<\(t.rawValue)>"
        case .constant(let c): return "const<\(formatFloat(c))>"
        case .batchSize: return "batch_size"
        case .stepCount: return "step_count"
        case .iteration: return "iteration"
        case let .reduce(op, axes, keep): return "reduce_\(op.rawValue)<\(axes)\(keep ? ", keep" : "")>"
        case .reshape(let s): return "reshape<\(s.map(\.description).joined(separator: ", "))>"
        case .transpose(let p): return "transpose<\(p)>"
        case .broadcast(let s): return "broadcast<\(s.map(\.description).joined(separator: ", "))>"
        case let .matmul(ta, tb): return "matmul" + (ta || tb ? "<\(ta ? "T" : "N")\(tb ? "T" : "N")>" : "")
        case let .conv2D(w, _, _): return "conv2d<\(w)>"
        case let .conv2DGradInput(w, _, _): return "conv2d_grad_input<\(w)>"
        case .conv2DGradFilter(let w): return "conv2d_grad_filter<\(w)>"
        case let .im2col(w, _, _): return "im2col<\(w)>"
        case let .col2im(w, _, _, _, _, _): return "col2im<\(w)>"
        case let .pool2D(k, w, _, _): return "\(k.rawValue)_pool2d<\(w)>"
        case let .pool2DGrad(k, w): return "\(k.rawValue)_pool2d_grad<\(w)>"
        case .gather: return "gather"
        case .scatterAdd(let r): return "scatter_add<\(r)>"
        case .concat(let a): return "concat<\(a)>"
        case let .split(a, sizes): return "split<axis=\(a), \(sizes)>"
        case let .slice(a, s, l): return "slice<axis=\(a), \(s)..<\(s + l)>"
        case .iota(let k): return "iota<\(k)>"
        case .randomUniform(let salt): return "random_uniform<\(salt)>"
        case .fused(let e): return "fused{\(e)}"
        case let .convBiasAct(w, _, _, act): return "conv2d_bias<\(w)>" + (act.map { "{\($0)}" } ?? "")
        case .scan(let c): return "scan<\(c)>"
        case .scanGrad(let c): return "scan_grad<\(c)>"
        case .assign: return "assign"
        }
    }
}

extension Op: CustomStringConvertible {
    public var description: String {
        switch self {
        case .layer(let l): return l.description
        case .prim(let p): return p.description
        }
    }
}

extension Graph: CustomStringConvertible {
    public var description: String {
        func decl(_ v: Value) -> String { "\(v): \(type(v)) \"\(info(v).name)\"" }
        var s = "graph \(name)(" + inputs.map(decl).joined(separator: ", ") + ")"
        if !params.isEmpty {
            s += "\n  params(" + params.map { p in decl(p.value) + (p.trainable ? "" : " frozen") + (p.role == .slot ? " slot" : "") }
                .joined(separator: ",\n         ") + ")"
        }
        s += "\n"
        for n in nodes {
            let lhs = n.outputs.isEmpty ? "" : n.outputs.map(\.description).joined(separator: ", ") + " = "
            var line = "  " + lhs + n.op.description
            if !n.inputs.isEmpty { line += " " + n.inputs.map(\.description).joined(separator: ", ") }
            let types = n.outputs.map { type($0).description }.joined(separator: ", ")
            line += " : " + (types.isEmpty ? "()" : types)
            let pad = max(1, 64 - line.count)
            s += line + String(repeating: " ", count: pad) + "; " + n.layer + "\n"
        }
        s += "  return " + zip(outputs, outputNames).map { "\($0) \"\($1)\"" }.joined(separator: ", ") + "\n"
        return s
    }
}
