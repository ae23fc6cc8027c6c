import KilnIR

/// A pass: a name (for --print-after) and a function Graph -> Graph.
public struct Pass: Sendable {
    public var name: String
    public var run: @Sendable (Graph) throws -> Graph
    public init(_ name: String, _ run: @escaping @Sendable (Graph) throws -> Graph) { self.name = name; self.run = run }
}

/// Rebuilds a graph node by node: inputs and params are carried over, and
/// each old node is handed to `rewrite`, which appends its replacement to the
/// new graph and returns the new values standing for the old outputs.
public struct GraphRebuilder {
    public var old: Graph
    public var new: Graph
    public var map: [Value: Value] = [:]

    public init(_ g: Graph) {
        old = g
        new = Graph(name: g.name)
        new.batchSize = g.batchSize
        for (v, name) in zip(g.inputs, g.inputNames) { map[v] = new.addInput(name, g.type(v)) }
        for p in g.params {
            map[p.value] = new.addParam(p.name, p.type, initial: p.initial, trainable: p.trainable, role: p.role)
            new.params[new.params.count - 1].regularizer = p.regularizer
            new.params[new.params.count - 1].constraint = p.constraint
        }
    }

    public subscript(v: Value) -> Value { map[v]! }

    public mutating func run(_ rewrite: (inout GraphRebuilder, Node) throws -> [Value]) throws -> Graph {
        for n in old.nodes {
            let outs = try rewrite(&self, n)
            for (o, v) in zip(n.outputs, outs) { map[o] = v }
        }
        for (v, name) in zip(old.outputs, old.outputNames) { new.addOutput(map[v]!, name: name) }
        new.outputMasks = old.outputMasks.map { $0.flatMap { map[$0] } }
        for (k, v) in old.inferenceForms { if let nk = map[k], let nv = map[v] { new.inferenceForms[nk] = nv } }
        // The old graph's state writes and loss terms, then those the rewrite made (lowering's).
        new.stateUpdates = old.stateUpdates.compactMap { u in map[u.value].map { StateUpdate(param: map[u.param]!, value: $0, inference: u.inference) } } + new.stateUpdates
        new.lossTerms = old.lossTerms.compactMap { map[$0] } + new.lossTerms
        return new
    }

    /// Copies a node unchanged (inputs remapped).
    public mutating func copy(_ n: Node) throws -> [Value] {
        try new.add(n.op, n.inputs.map { map[$0]! }, layer: n.layer)
    }
}
