import KilnIR

/// Where each parameter (a weight, an optimizer slot) lives in an instance's state block, by
/// name: planned once, from the graph that has them all (the training step's), and used by
/// every program of the model, so predict, train and evaluate agree by construction.
public struct StateLayout: Sendable, Equatable {
    public private(set) var offsets: [String: Int] = [:]
    /// The state block's size.
    public private(set) var bytes = 0
    public init(_ params: [Param]) {
        for p in params {
            offsets[p.name] = bytes
            bytes += align(p.type.staticCount * p.type.dtype.byteSize)
        }
    }
}

/// Turns a primitive graph into steps and plans memory: inputs stay in the
/// caller's arrays, parameters where `state` places them (by default, a layout of this
/// graph's own), everything else in one arena whose offsets are fixed now, scaled by N at
/// run time.
public func schedule(_ g: Graph, state: StateLayout? = nil, result: Value? = nil, metrics: [Value] = []) throws -> Program {
    let state = state ?? StateLayout(g.params)
    var steps: [Step] = []
    var alias: [Value: Value] = [:]
    for n in g.nodes {
        if case .prim(let op) = n.op, op.isView {
            alias[n.outputs[0]] = alias[n.inputs[0]] ?? n.inputs[0]
            continue
        }
        if case .layer = n.op {
            throw ShapeError(layer: n.layer, "layer op \(n.op) was not lowered")
        }
        steps.append(contentsOf: kernelSteps(n, in: g))
    }
    func root(_ v: Value) -> Value { alias[v] ?? v }
    steps = steps.map { remap($0, root) }
    let keptValues = Set(g.outputs.map(root) + (result.map { [root($0)] } ?? []) + metrics.map(root))
    steps = fuseEpilogues(steps, g, kept: keptValues)
    steps = writeUpdatesInPlace(steps, g, aliased: Set(alias.values), kept: keptValues)

    var homes: [Value: Home] = [:]
    for (k, v) in g.inputs.enumerated() { homes[v] = .input(k) }
    for p in g.params {
        guard let offset = state.offsets[p.name] else {
            throw ShapeError(layer: g.name, "internal error: parameter \(p.name) has no place in the model's state layout")
        }
        homes[p.value] = .state(offset)
    }

    // Liveness over steps, for values that need arena memory.
    var first: [Value: Int] = [:], last: [Value: Int] = [:]
    for (i, s) in steps.enumerated() {
        for v in s.writes where homes[v] == nil { if first[v] == nil { first[v] = i }; last[v] = max(last[v] ?? i, i) }
        for v in s.reads where homes[v] == nil { last[v] = max(last[v] ?? i, i) }
    }
    // Paired scans run at the same time: each one's values live across both steps.
    for i in pairedScans(steps) {
        for v in steps[i].reads + steps[i].writes where homes[v] == nil { last[v] = max(last[v] ?? i, i + 1) }
        for v in steps[i + 1].reads + steps[i + 1].writes where homes[v] == nil { first[v] = min(first[v] ?? i, i) }
    }
    let end = steps.count
    for v in g.outputs.map(root) + (result.map { [root($0)] } ?? []) where homes[v] == nil {
        if first[v] == nil { first[v] = 0 }
        last[v] = end
    }

    // First-fit over live intervals, per pool (values that scale alike: per row-step, per
    // row, per step, fixed). Values are placed in order of their first step, so a block whose
    // last step is before the current value's first can never overlap a later one: the pools
    // hold only the blocks still live.
    struct Block { var offset: Int; var size: Int; var from: Int; var to: Int }
    var pools: [Scale: [Block]] = [:]
    var totals: [Scale: Int] = [:]
    for v in first.keys.sorted(by: { (first[$0]!, $0.id) < (first[$1]!, $1.id) }) {
        let t = g.type(v)
        let scale = t.scale
        let size = align(t.staticCount * t.dtype.byteSize)
        let (from, to) = (first[v]!, last[v]!)
        pools[scale, default: []].removeAll { $0.to < from }
        let busy = pools[scale, default: []].sorted { $0.offset < $1.offset }
        var offset = 0
        for b in busy where offset + size > b.offset && b.offset + b.size > offset { offset = max(offset, b.offset + b.size) }
        pools[scale, default: []].append(Block(offset: offset, size: size, from: from, to: to))
        homes[v] = .arena(scale, offset)
        totals[scale] = max(totals[scale] ?? 0, offset + size)
    }
    for (a, r) in alias { homes[a] = homes[r] }

    return Program(name: g.name, graph: g, steps: steps, homes: homes, state: state, arena: totals,
                   outputs: g.outputs.map(root), result: result.map(root), metrics: metrics.map(root))
}

public func align(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

/// An optimizer update `v = f(p, ...); assign(p, v)` writes straight into p's
/// state when f is a flat elementwise loop (element i of p is read before it is
/// written, by the same iteration) and nothing after f reads the old p; later
/// readers of v read p's memory, which holds v. The copy of the assign goes away.
func writeUpdatesInPlace(_ steps: [Step], _ g: Graph, aliased: Set<Value>, kept: Set<Value>) -> [Step] {
    var steps = steps
    var drop = Set<Int>()
    let params = Set(g.params.map(\.value))
    for (ai, st) in steps.enumerated() {
        guard case let .loop(k, args) = st, args.count == 2, k.buffers[0].written, params.contains(args[0]) else { continue }
        let (p, v) = (args[0], args[1])
        guard !aliased.contains(v), !kept.contains(v) else { continue }
        let writers = steps.indices.filter { steps[$0].writes.contains(v) }
        guard writers.count == 1, let fi = writers.first, fi < ai,
              case let .loop(fk, fargs) = steps[fi], fk.loops.count == 1, fk.reduceLoops.isEmpty, fk.outputIndex == .index(0),
              g.type(p).staticCount == g.type(v).staticCount,
              !steps.indices.contains(where: { $0 > fi && $0 != ai && steps[$0].reads.contains(p) }) else { continue }
        // The update reads p[i] and writes p[i]: one buffer, read and written.
        let (merged, margs) = LoopKernel.mergingDuplicateArguments(fk, fargs.map { $0 == v ? p : $0 })
        steps[fi] = .loop(merged, args: margs)
        for j in steps.indices where j > fi && j != ai { steps[j] = remap(steps[j]) { $0 == v ? p : $0 } }
        drop.insert(ai)
    }
    return steps.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
}

/// Folds into a product or a convolution the loop that follows it when that loop only adds a
/// per-column bias to its result, and perhaps applies relu (a layer's bias and activation):
///   // gemm %c = %a·%b; loop(%c, %b0, %y): y = relu(add(c, b0[last]))  ->  gemm %y = %a·%b then relu(+ %b0)
/// so the result is finished while it is in cache, and the loop's pass over memory goes away.
/// Only when nothing else reads the raw result.
func fuseEpilogues(_ steps: [Step], _ g: Graph, kept: Set<Value>) -> [Step] {
    var reads: [Value: Int] = [:]
    for s in steps { for v in s.reads { reads[v, default: 0] += 1 } }
    var out: [Step] = []
    var i = 0
    while i < steps.count {
        if i + 1 < steps.count, case let .loop(k, args) = steps[i + 1], let (c, e, y) = biasLoop(k, args, g),
           reads[c] == 1, !kept.contains(c) {
            switch steps[i] {
            case let .gemm(a, b, cc, ta, tb, m, n, kk, nil) where cc == c && !ta && k.loops.last == n:
                out.append(.gemm(a: a, b: b, c: y, transA: ta, transB: tb, m: m, n: n, k: kk, epilogue: e))
                i += 2
                continue
            case let .conv(x, w, cc, geo, nil) where cc == c:
                out.append(.conv(x: x, w: w, y: y, geo, epilogue: e))
                i += 2
                continue
            default: break
            }
        }
        out.append(steps[i])
        i += 1
    }
    return out
}

/// A loop y = add(c, bias[last index]) or relu of it, elementwise over c: (c, the epilogue, y).
private func biasLoop(_ k: LoopKernel, _ args: [Value], _ g: Graph) -> (Value, Epilogue, Value)? {
    guard !k.accumulate, k.reduceLoops.isEmpty, k.extraStores.isEmpty, k.epilogue == nil, let last = k.loops.indices.last else { return nil }
    var body = k.body, relu = false
    if case let .unary(.relu, inner) = body { body = inner; relu = true }
    guard case let .binary(.add, p, q) = body else { return nil }
    for (full, column) in [(p, q), (q, p)] {
        guard case let .load(cb, at) = full, at == k.outputIndex, case let .load(bb, bat) = column, bat == .index(last) else { continue }
        let (c, bias, y) = (args[cb], args[bb], args[k.output])
        let (ct, bt, yt) = (g.type(c), g.type(bias), g.type(y))
        guard ct.dtype == .f32, bt.dtype == .f32, yt.dtype == .f32, bt.rank == 1, ct.staticCount == yt.staticCount, ct.scale == yt.scale,
              ct.shape.last == yt.shape.last, bt.shape.last == yt.shape.last else { continue }
        return (c, Epilogue(bias: bias, relu: relu), y)
    }
    return nil
}

private func remap(_ s: Step, _ f: (Value) -> Value) -> Step {
    switch s {
    case let .loop(k, args): return .loop(k, args: args.map(f))
    case let .gemm(a, b, c, ta, tb, m, n, k, e):
        return .gemm(a: f(a), b: f(b), c: f(c), transA: ta, transB: tb, m: m, n: n, k: k, epilogue: e.map { Epilogue(bias: f($0.bias), relu: $0.relu) })
    case .zero(let v): return .zero(f(v))
    case .scan(var s):
        s.args = s.args.map(f); s.mask = s.mask.map(f); s.recurrentDropout = s.recurrentDropout.map(f)
        (s.a, s.b, s.c) = (f(s.a), f(s.b), f(s.c))
        s.carries = s.carries.map(f); s.initial = s.initial.map { $0.map(f) }
        return .scan(s)
    case let .convGradInput(dy, w, dx, geo): return .convGradInput(dy: f(dy), w: f(w), dx: f(dx), geo)
    case let .convGradFilter(x, dy, dw, geo): return .convGradFilter(x: f(x), dy: f(dy), dw: f(dw), geo)
    case let .conv(x, w, y, geo, e): return .conv(x: f(x), w: f(w), y: f(y), geo, epilogue: e.map { Epilogue(bias: f($0.bias), relu: $0.relu) })
    case .call(var c):
        c.inputs = c.inputs.map { $0.map(f) }; c.outputs = c.outputs.map(f)
        return .call(c)
    }
}
