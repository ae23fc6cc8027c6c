// The base layer: a name, weights made on the first call, `callAsFunction` on
// symbolic tensors. A layer of the layer table is a `LayerKind` value (its file in
// Layers/ holds both); the older layers say which LayerOp they are and which weights
// they need for given inputs.

import KilnIR
import KilnRuntime
import KilnSupport

/// A Keras layer. Call it on a ``KerasTensor`` (or a list, for merge layers)
/// to add it to a model; its weights are made on the first call, from the
/// input's shape, and shared by later calls.
public class Layer {
    /// The layer's name, unique by default like Keras' (`dense`, `dense_1`, ...).
    public let name: String
    /// Whether training updates this layer's weights. Like Keras, set it
    /// before `compile`.
    public var trainable = true
    /// Keras' variable names of the weights, in `get_weights()` order
    /// ("kernel", "bias", "embeddings"); empty until the first call.
    public private(set) var weightNames: [String] = []
    /// Shapes of the weights, in `get_weights()` order.
    public private(set) var weightShapes: [[Int]] = []
    /// Whether gradient steps change each weight (false for statistics such as
    /// BatchNormalization's moving mean), in `get_weights()` order.
    public private(set) var weightTrainable: [Bool] = []
    package var weightValues: [[Float]] = []
    /// Bumped by every `setWeights`, so a loaded model knows what to push.
    package var version = 0
    /// Whether the weights exist (the layer has been called once).
    public private(set) var isBuilt = false
    /// The layer table's kind, for the layers declared through it (Layers/*.swift).
    package let kind: (any LayerKind)?

    package init(name: String?, prefix: String) {
        self.name = name ?? Keras.uniqueName(prefix)
        self.kind = nil
    }

    /// A layer of the layer table; its default name is Keras' (the class name in snake case).
    package init(kind: any LayerKind, name: String?) {
        self.kind = kind
        self.name = name ?? Keras.uniqueName(Keras.snakeCase(kind.kerasClass))
    }

    /// The Keras class name, as `summary()` shows it.
    public var className: String { kind?.kerasClass ?? "Layer" }

    /// The layer op this layer adds to the graph.
    package var op: LayerOp? { kind?.op }

    /// How many inputs a call takes.
    package var arity: ClosedRange<Int> { kind?.arity ?? 1...1 }

    /// The weights a first call on inputs of these types makes.
    package func weightSpecs(_ inputs: [TensorType]) throws -> [LayerWeight] {
        guard let kind else { return [] }
        do { return try kind.weights(for: inputs) } catch let e as ShapeError {
            throw KerasAPIError(ShapeError(layer: "\(className) '\(name)'", e.message, hint: e.hint).description)
        }
    }

    /// Applies the layer to one tensor.
    /// - Parameters:
    ///   - x: a symbolic tensor from ``Input`` or another layer.
    /// - Returns: the symbolic output. A shape error is kept in it and thrown
    ///   when a model is made from it.
    public func callAsFunction(_ x: KerasTensor) -> KerasTensor { call([x]) }

    /// Applies the layer to several tensors (``Concatenate``, ``Add``).
    /// - Parameters:
    ///   - xs: the symbolic inputs, in order.
    public func callAsFunction(_ xs: [KerasTensor]) -> KerasTensor { call(xs) }

    /// Applies a layer with several outputs to one tensor and returns them all, in Keras' order:
    /// `LSTM(returnState: true)` gives [output, h, c], `GRU` and `SimpleRNN` [output, h],
    /// `Bidirectional(mergeMode: nil)` [forward, backward] (then with `returnState` the forward
    /// layer's states and the backward one's).
    ///
    ///     let outs = LSTM(8, returnState: true).callMulti(x)   // outs[0], outs[1] (h), outs[2] (c)
    ///
    /// - Parameters:
    ///   - x: a symbolic tensor from ``Input`` or another layer.
    /// - Returns: one symbolic tensor per output (one for a layer with one output). On a shape
    ///   error the array holds one tensor carrying it, thrown when a model is made from it.
    public func callMulti(_ x: KerasTensor) -> [KerasTensor] { callAll([x]) }

    /// ``callMulti(_:)-...`` on several input tensors.
    public func callMulti(_ xs: [KerasTensor]) -> [KerasTensor] { callAll(xs) }

    package func call(_ xs: [KerasTensor]) -> KerasTensor { callAll(xs)[0] }

    package func callAll(_ xs: [KerasTensor]) -> [KerasTensor] {
        let node = LayerNode(layer: self, inputs: xs, op: op)
        if let failed = xs.first(where: { $0.error != nil }), let e = failed.error {
            return [KerasTensor(node: node, error: e)]
        }
        guard let op, arity.contains(xs.count) else {
            let want = arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "\(arity.lowerBound) or more"
            return [KerasTensor(node: node, error: KerasAPIError("\(className) '\(name)' takes \(want) input\(arity.upperBound == 1 ? "" : "s"), but was called on \(xs.count)."))]
        }
        let types = xs.compactMap(\.type)
        do {
            var shapes = weightShapes
            var specs: [LayerWeight] = []
            if !isBuilt {
                specs = try weightSpecs(types)
                shapes = specs.map(\.shape)
            }
            let outs = try inferTypes(.layer(op), types + shapes.map { TensorType.f32($0.map { .fixed($0) }) }, layer: name)
            if !isBuilt {
                weightNames = specs.map(\.name)
                weightShapes = shapes
                weightTrainable = specs.map(\.trainable)
                weightValues = specs.map { $0.initializer.values($0.shape) }
                isBuilt = true
            }
            return outs.enumerated().map { KerasTensor(node: node, type: $1, index: $0) }
        } catch {
            return [KerasTensor(node: node, error: error)]
        }
    }

    /// The weights in Keras `get_weights()` order, each flattened row-major.
    public var weights: [[Float]] { weightValues }

    /// The weights as shaped arrays, in `get_weights()` order.
    public func getWeights() -> [HostTensor] {
        zip(weightShapes, weightValues).map { HostTensor(shape: $0, floats: $1) }
    }

    /// Replaces the weights, as Keras' `set_weights`.
    /// - Parameters:
    ///   - values: one flat row-major array per weight, in `get_weights()` order.
    /// - Throws: ``KerasAPIError`` when the count or a size does not match.
    public func setWeights(_ values: [[Float]]) throws {
        guard values.count == weightShapes.count else {
            throw KerasAPIError("layer '\(name)' has \(weightShapes.count) weights\(isBuilt ? "" : " (it has not been called yet)"), but \(values.count) were given.")
        }
        for (i, (v, shape)) in zip(values, weightShapes).enumerated() where v.count != shape.reduce(1, *) {
            throw KerasAPIError("weight '\(name)/\(weightNames[i])' has shape \(formatShape(shape)) (\(shape.reduce(1, *)) values), but \(v.count) values were given.")
        }
        weightValues = values
        version += 1
    }

    /// Replaces the weights from shaped arrays (e.g. read with `NPY.read`).
    /// - Parameters:
    ///   - values: one array per weight, in `get_weights()` order, with the weight's exact shape.
    public func setWeights(_ values: [HostTensor]) throws {
        for (i, (t, shape)) in zip(values, weightShapes).enumerated() where t.shape != shape {
            throw KerasAPIError("weight '\(name)/\(weightNames[i])' has shape \(formatShape(shape)), but the array given has shape \(formatShape(t.shape)).")
        }
        try setWeights(values.map { $0.dtype == .float32 ? $0.floats : $0.ints.map(Float.init) })
    }

    /// Number of weight values (Keras' `count_params()`).
    public func countParams() -> Int { weightShapes.reduce(0) { $0 + $1.reduce(1, *) } }

    /// Sets the weights without counting it as a user change (a pull from a library).
    package func syncWeights(_ values: [[Float]]) { weightValues = values }
}

/// A model input's layer, made by ``Input(shape:dtype:name:)``.
public final class InputLayer: Layer {
    /// The per-sample shape.
    public let inputShape: [Int]
    public let dtype: HostDType

    package init(shape: [Int], dtype: HostDType, name: String?) {
        self.inputShape = shape
        self.dtype = dtype
        super.init(name: name, prefix: "input_layer")
    }

    public override var className: String { "InputLayer" }

    package func makeOutput() -> KerasTensor {
        let node = LayerNode(layer: self, inputs: [], op: nil)
        let t: KerasTensor
        if inputShape.isEmpty || inputShape.contains(where: { $0 <= 0 }) {
            t = KerasTensor(node: node, error: KerasAPIError("Input '\(name)' has shape \(formatShape(inputShape)); Kiln needs one or more fixed, positive sizes after the batch dimension."), dtype: dtype)
        } else {
            t = KerasTensor(node: node, type: TensorType(dtype == .int32 ? .i32 : .f32, [.n] + inputShape.map { .fixed($0) }))
        }
        return t
    }
}
