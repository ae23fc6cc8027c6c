// The graph: SSA values produced by nodes, model inputs and parameters.

import KilnSupport

/// A reference to a value of a graph.
public struct Value: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let id: Int
    public init(_ id: Int) { self.id = id }
    public static func < (a: Value, b: Value) -> Bool { a.id < b.id }
    public var description: String { "%\(id)" }
}

/// Where a value comes from.
public enum ValueSource: Hashable, Sendable {
    /// Model input k (for training graphs, targets follow the inputs).
    case input(Int)
    /// Parameter k (a weight or an optimizer slot, living in the instance's state).
    case param(Int)
    /// Output k of node i.
    case node(Int, Int)
}

public struct ValueInfo: Sendable {
    public var type: TensorType
    public var source: ValueSource
    public var name: String
}

/// A parameter: a weight (in Keras get_weights() order) or an optimizer slot.
public struct Param: Sendable {
    /// weight: in get_weights(); slot: the optimizer's; carried: a stateful layer's state between
    /// calls (zero at creation and after reset_states).
    public enum Role: Hashable, Sendable { case weight, slot, carried }
    public var name: String
    public var type: TensorType
    public var initial: [Float]
    public var trainable: Bool
    public var role: Role
    public var value: Value
    /// Keras' `<weight>_regularizer`: its penalty is added to the training and evaluation loss
    /// (trainable weights only, as Keras).
    public var regularizer: Regularizer? = nil
    /// Keras' `<weight>_constraint`: applied to the weight after each optimizer update.
    public var constraint: Constraint? = nil
}

/// A state write a layer's training form makes besides the optimizer's (BatchNormalization's
/// moving statistics): the training step assigns `value` to the parameter `param`; the
/// inference form drops it.
public struct StateUpdate: Hashable, Sendable {
    public var param: Value
    public var value: Value
    /// Predict writes it too (a stateful recurrent layer's carried state), not only training.
    public var inference: Bool
    public init(param: Value, value: Value, inference: Bool = false) { self.param = param; self.value = value; self.inference = inference }
}

/// One op application. `layer` names the Keras layer it came from, for messages.
public struct Node: Sendable {
    public var op: Op
    public var inputs: [Value]
    public var outputs: [Value]
    public var layer: String
}

/// A graph in topological order (a node's inputs are produced before it).
public struct Graph: Sendable {
    public var name: String
    public private(set) var values: [ValueInfo] = []
    public var nodes: [Node] = []
    public var inputs: [Value] = []
    public var inputNames: [String] = []
    public var params: [Param] = []
    public var outputs: [Value] = []
    public var outputNames: [String] = []
    /// Per output, its Keras mask (bool, batch and time), when mask propagation found one.
    public var outputMasks: [Value?] = []
    /// Where predict and evaluate depart from the training form that lowering builds: in an
    /// inference program, value k stands for value v (a dropout's result for its input). The
    /// inference pass (Pipeline.swift) applies and clears it; rebuilt graphs carry it.
    public var inferenceForms: [Value: Value] = [:]
    /// State writes of the training form (StateUpdate); the training step emits them as assigns
    /// next to the optimizer's, the inference pass drops them.
    public var stateUpdates: [StateUpdate] = []
    /// Scalar terms a layer adds to the loss (Keras' `add_loss`: activity regularization),
    /// in training and evaluation alike.
    public var lossTerms: [Value] = []
    /// The batch size the model's Input fixes (Keras' batch_shape (B, ...)), if it does;
    /// stateful recurrent layers need it for the state they carry.
    public var batchSize: Int? = nil

    public init(name: String) { self.name = name }

    public func type(_ v: Value) -> TensorType { values[v.id].type }
    public func info(_ v: Value) -> ValueInfo { values[v.id] }

    /// The node that produces v, if any.
    public func producer(_ v: Value) -> Node? {
        if case let .node(i, _) = values[v.id].source { return nodes[i] }
        return nil
    }

    private mutating func newValue(_ type: TensorType, _ source: ValueSource, _ name: String) -> Value {
        values.append(ValueInfo(type: type, source: source, name: name))
        return Value(values.count - 1)
    }

    /// Adds a model input.
    @discardableResult
    public mutating func addInput(_ name: String, _ type: TensorType) -> Value {
        let v = newValue(type, .input(inputs.count), name)
        inputs.append(v); inputNames.append(name)
        return v
    }

    /// Adds a parameter with its initial value.
    @discardableResult
    public mutating func addParam(_ name: String, _ type: TensorType, initial: [Float], trainable: Bool = true,
                                  role: Param.Role = .weight) -> Value {
        precondition(!type.scalesWithBatch && initial.count == type.staticCount,
                     "parameter \(name): \(initial.count) values for \(type)")
        let v = newValue(type, .param(params.count), name)
        params.append(Param(name: name, type: type, initial: initial, trainable: trainable, role: role, value: v))
        return v
    }

    /// The parameter whose value this is, if any.
    public func param(_ v: Value) -> Param? {
        if case .param(let k) = values[v.id].source { return params[k] }
        return nil
    }

    /// Appends a node whose output types are inferred; throws a ShapeError naming the layer.
    @discardableResult
    public mutating func add(_ op: Op, _ inputs: [Value], layer: String) throws -> [Value] {
        let types: [TensorType]
        do { types = try inferTypes(op, inputs.map { type($0) }, layer: layer) } catch let e as ShapeError { throw explain(e, op, inputs) }
        for t in types { try Graph.checkSize(t, layer: layer, what: "its output") }
        let index = nodes.count
        let outs = types.enumerated().map { k, t in newValue(t, .node(index, k), layer) }
        nodes.append(Node(op: op, inputs: inputs, outputs: outs, layer: layer))
        return outs
    }

    /// Appends a primitive with one output.
    public mutating func prim(_ op: PrimOp, _ inputs: Value..., layer: String) throws -> Value {
        try add(.prim(op), inputs, layer: layer)[0]
    }

    /// Marks a model output.
    public mutating func addOutput(_ v: Value, name: String) {
        outputs.append(v); outputNames.append(name)
    }

    /// Replaces every use of `old` (by nodes after it and by outputs) with `new`.
    public mutating func replaceUses(of old: Value, with new: Value) {
        for i in nodes.indices { nodes[i].inputs = nodes[i].inputs.map { $0 == old ? new : $0 } }
        outputs = outputs.map { $0 == old ? new : $0 }
        stateUpdates = stateUpdates.map { $0.value == old ? StateUpdate(param: $0.param, value: new, inference: $0.inference) : $0 }
        lossTerms = lossTerms.map { $0 == old ? new : $0 }
    }

    /// Rebuilds the graph keeping only `keep` nodes (in order), renumbering nothing:
    /// values keep their ids, sources are re-pointed.
    public mutating func retainNodes(_ keep: [Bool]) {
        var newNodes: [Node] = []
        for (i, n) in nodes.enumerated() where keep[i] {
            let index = newNodes.count
            for (k, v) in n.outputs.enumerated() { values[v.id].source = .node(index, k) }
            newNodes.append(n)
        }
        nodes = newNodes
    }

    /// Use counts of each value (by nodes and outputs).
    public func useCounts() -> [Int] {
        var uses = [Int](repeating: 0, count: values.count)
        for n in nodes { for v in n.inputs { uses[v.id] += 1 } }
        for v in outputs { uses[v.id] += 1 }
        for u in stateUpdates { uses[u.value.id] += 1 }
        for v in lossTerms { uses[v.id] += 1 }
        return uses
    }

    /// Refuses a value one sample (one row, one row-step) of which would take more memory than
    /// `KilnLimits.maxBytes` (README "Fuzzing and bounded inputs"): a config may declare any
    /// shape, and no kernel, buffer or size computation should be made for such a value.
    static func checkSize(_ t: TensorType, layer: String, what: String) throws {
        let limit = KilnLimits.maxBytes
        if let n = t.checkedStaticCount, n <= limit / t.dtype.byteSize { return }
        let need = t.checkedStaticCount.map { Double($0) * Double(t.dtype.byteSize) } ?? .infinity
        let size = need.isFinite && need < Double(Int.max) ? KilnLimits.describe(Int(need)) : "more than 8 EiB"
        let unit = t.scalesWithBatch ? " per sample" : ""
        throw ShapeError(layer: layer, "\(what) of shape \(t.kerasDescription) would take \(size)\(unit), more than Kiln allows (\(KilnLimits.overrideHint))")
    }

    /// Checks the structural invariants: topological order, arity, types, and sizes within
    /// `KilnLimits.maxBytes`.
    public func verify() throws {
        for (k, v) in inputs.enumerated() { try Graph.checkSize(type(v), layer: inputNames[k], what: "the input") }
        var defined = Set(inputs).union(params.map(\.value))
        for n in nodes {
            for v in n.inputs where !defined.contains(v) {
                throw ShapeError(layer: n.layer, "uses \(v) before it is defined")
            }
            let types = try inferTypes(n.op, n.inputs.map { type($0) }, layer: n.layer)
            if types != n.outputs.map({ type($0) }) {
                throw ShapeError(layer: n.layer, "output types \(n.outputs.map { type($0) }) do not match inferred \(types)")
            }
            defined.formUnion(n.outputs)
        }
        for v in outputs where !defined.contains(v) { throw ShapeError(layer: name, "output \(v) is never defined") }
    }
}
