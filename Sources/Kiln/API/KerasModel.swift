// Models of the Swift API: Sequential and FunctionalModel. A model orders its
// layers as Keras does (Keras' map_graph), builds KilnIR's layer graph, prints
// the summary and owns the weights; Training.swift compiles and runs it.

import KilnIR
import KilnLayers

/// What ``Sequential`` and ``FunctionalModel`` share: inputs, outputs, the
/// layers in Keras order, the weights, `summary()` and `build()`; the
/// training side (`compile`, `predict`, `fit`, `evaluate`) is in Training.swift.
public class KerasModel {
    /// The model name (default `sequential` / `functional`, then `_1`, ...).
    public let name: String
    /// The model inputs, in order (tensors made by ``Input(shape:dtype:name:)``).
    public private(set) var inputs: [KerasTensor]
    /// The model outputs, in order.
    public private(set) var outputs: [KerasTensor]
    /// How the model trains, set by `compile`; nil before.
    public internal(set) var training: TrainingConfig?
    let isSequential: Bool
    /// Every layer in Keras order, input layers included.
    private(set) var operations: [Layer] = []
    /// The layer calls in execution order, input layers excluded.
    private(set) var nodes: [LayerNode] = []
    /// The loaded library that predict and fit run; see Training.swift.
    var library: CompiledLibrary?
    /// Each layer's `version` when its weights were last pushed to `library`.
    var libraryVersions: [ObjectIdentifier: Int] = [:]

    init(name: String, inputs: [KerasTensor], outputs: [KerasTensor], sequential: Bool) throws {
        self.name = name; self.inputs = inputs; self.outputs = outputs; self.isSequential = sequential
        try mapGraph()
    }

    /// The layers, as Keras' `model.layers` (a Sequential leaves out its input layer).
    public var layers: [Layer] { isSequential ? operations.filter { !($0 is InputLayer) } : operations }

    /// The layer called `name`.
    /// - Parameters:
    ///   - name: a layer name, e.g. "dense_1".
    public func layer(named name: String) -> Layer? { operations.first { $0.name == name } }

    // MARK: - Graph

    /// Orders the layers as Keras' `map_graph` does: by depth from the outputs
    /// (deepest first), ties by first visit in a depth-first walk from the
    /// outputs. This is the order of `model.layers` and of `get_weights()`.
    func mapGraph() throws {
        guard !inputs.isEmpty, !outputs.isEmpty else {
            throw KerasAPIError("model '\(name)' needs at least one input and one output.")
        }
        for t in inputs + outputs { if let e = t.error { throw e } }
        for t in inputs where !(t.node.layer is InputLayer) {
            throw KerasAPIError("model '\(name)': input \(t) is not made by Input(shape:); pass the tensors Input returned.")
        }
        let inputIDs = Set(inputs.map { ObjectIdentifier($0) })
        guard inputIDs.count == inputs.count else { throw KerasAPIError("model '\(name)' lists an input twice.") }

        var finished = Set<ObjectIdentifier>()
        var order: [LayerNode] = []                     // post-order: parents before children
        var firstVisit: [ObjectIdentifier: Int] = [:]   // layer -> index
        var layerByID: [ObjectIdentifier: Layer] = [:]
        func visit(_ t: KerasTensor) throws {
            let node = t.node, nid = ObjectIdentifier(node), lid = ObjectIdentifier(node.layer)
            if finished.contains(nid) { return }
            if firstVisit[lid] == nil { firstVisit[lid] = firstVisit.count; layerByID[lid] = node.layer }
            if !inputIDs.contains(ObjectIdentifier(t)) {
                if node.layer is InputLayer {
                    throw KerasAPIError("model '\(name)': the graph is disconnected: the outputs need input '\(node.layer.name)', which is not among the model's inputs.")
                }
                for x in node.inputs { try visit(x) }
            }
            finished.insert(nid)
            order.append(node)
        }
        for t in outputs { try visit(t) }

        var nodeDepth: [ObjectIdentifier: Int] = [:], layerDepth: [ObjectIdentifier: Int] = [:]
        for node in order.reversed() {
            let nid = ObjectIdentifier(node), lid = ObjectIdentifier(node.layer)
            let depth = max(nodeDepth[nid] ?? 0, layerDepth[lid] ?? 0)
            layerDepth[lid] = depth
            nodeDepth[nid] = depth
            for x in node.inputs { nodeDepth[ObjectIdentifier(x.node)] = max(depth + 1, nodeDepth[ObjectIdentifier(x.node)] ?? 0) }
        }
        var unused = 0
        for t in inputs where layerDepth[ObjectIdentifier(t.layer)] == nil {
            let lid = ObjectIdentifier(t.layer)
            layerDepth[lid] = 0; firstVisit[lid] = -1 - inputs.count + unused; layerByID[lid] = t.layer
            unused += 1
        }
        operations = layerByID.keys
            .sorted { a, b in layerDepth[a]! != layerDepth[b]! ? layerDepth[a]! > layerDepth[b]! : firstVisit[a]! < firstVisit[b]! }
            .map { layerByID[$0]! }
        nodes = order.filter { !($0.layer is InputLayer) }
    }

    /// The model as KilnIR's layer graph: inputs, the weights as parameters
    /// (in `get_weights()` order, holding the current values), the layer ops,
    /// the outputs, the summary rows and the training settings of `compile`.
    public func build() -> KilnIR.Model {
        pullFromLibrary()
        var g = Graph(name: name)
        var values: [ObjectIdentifier: [Value]] = [:]   // node -> its outputs
        var layerOutputs: [ObjectIdentifier: [Value]] = [:]
        for t in inputs {
            let v = g.addInput(t.layer.name, t.type!)
            values[ObjectIdentifier(t.node)] = [v]
            layerOutputs[ObjectIdentifier(t.layer), default: []].append(v)
        }
        var params: [ObjectIdentifier: [Value]] = [:]
        for l in operations where !(l is InputLayer) {
            params[ObjectIdentifier(l)] = l.weightNames.indices.map { i in
                g.addParam("\(l.name)/\(l.weightNames[i])", .f32(l.weightShapes[i].map { .fixed($0) }), initial: l.weights[i],
                           trainable: l.trainable && l.weightTrainable[i])
            }
        }
        for node in nodes {
            let ins = node.inputs.map { values[ObjectIdentifier($0.node)]![$0.index] } + params[ObjectIdentifier(node.layer)]!
            // Cannot fail: the call inferred the same types when the tensor was made.
            let vs = try! g.add(.layer(node.op!), ins, layer: node.layer.name)
            values[ObjectIdentifier(node)] = vs
            layerOutputs[ObjectIdentifier(node.layer), default: []] += vs
        }
        var used = Set<String>()
        for t in outputs {
            var outName = t.layer.name, k = 1
            while !used.insert(outName).inserted { outName = "\(t.layer.name)_\(k)"; k += 1 }
            g.addOutput(values[ObjectIdentifier(t.node)]![t.index], name: outName)
        }
        let firstCall = Dictionary(nodes.map { (ObjectIdentifier($0.layer), $0) }, uniquingKeysWith: { a, _ in a })
        let infos = operations.map { l -> LayerInfo in
            let count = l.countParams()
            let trainableCount = l.trainable ? zip(l.weightShapes, l.weightTrainable).filter(\.1).reduce(0) { $0 + $1.0.reduce(1, *) } : 0
            return LayerInfo(name: l.name, className: l.className, outputs: layerOutputs[ObjectIdentifier(l)] ?? [],
                             paramCount: count, trainableCount: trainableCount,
                             inbound: firstCall[ObjectIdentifier(l)]?.inputs.map { "\($0.layer.name)[0][\($0.index)]" } ?? [])
        }
        return KilnIR.Model(graph: g, layers: infos, training: training, isSequential: isSequential)
    }

    /// Keras' `model.summary()` table: layer (type), output shape, param #, totals.
    public func summary() -> String { ModelSummary.render(build()) }

    // MARK: - Weights

    /// The layers that hold weights, in `get_weights()` order.
    var weightLayers: [Layer] { operations.filter { !$0.weightShapes.isEmpty } }

    /// Every weight in Keras `get_weights()` order, each flattened row-major.
    /// After `fit` these are the trained values.
    public var weights: [[Float]] {
        pullFromLibrary()
        return weightLayers.flatMap(\.weights)
    }

    /// The weights as shaped arrays, in `get_weights()` order (e.g. for `NPY.write`).
    public func getWeights() -> [HostTensor] {
        pullFromLibrary()
        return weightLayers.flatMap { $0.getWeights() }
    }

    /// Shapes of the weights, in `get_weights()` order.
    public var weightShapes: [[Int]] { weightLayers.flatMap(\.weightShapes) }

    /// Replaces every weight, as Keras' `model.set_weights`.
    /// - Parameters:
    ///   - values: one flat row-major array per weight, in `get_weights()` order.
    /// - Throws: ``KerasAPIError`` naming the weight when a count does not fit; nothing changes then.
    public func setWeights(_ values: [[Float]]) throws {
        let shapes = weightShapes
        guard values.count == shapes.count else {
            throw KerasAPIError("model '\(name)' has \(shapes.count) weights, but \(values.count) were given.")
        }
        let names = weightLayers.flatMap { l in l.weightNames.map { "\(l.name)/\($0)" } }
        for (i, (v, s)) in zip(values, shapes).enumerated() where v.count != s.reduce(1, *) {
            throw KerasAPIError("weight \(i) ('\(names[i])') has shape \(formatShape(s)) (\(s.reduce(1, *)) values), but \(v.count) values were given.")
        }
        var i = 0
        for l in weightLayers {
            try l.setWeights(Array(values[i..<i + l.weightShapes.count]))
            i += l.weightShapes.count
        }
        try pushToLibrary()
    }

    /// Replaces every weight from shaped arrays (e.g. `NPY.read` of Keras' dumps).
    /// - Parameters:
    ///   - values: one array per weight, in `get_weights()` order, with the weight's exact shape.
    public func setWeights(_ values: [HostTensor]) throws {
        let shapes = weightShapes
        for (i, (t, s)) in zip(values, shapes).enumerated() where t.shape != s {
            throw KerasAPIError("weight \(i) of model '\(name)' has shape \(formatShape(s)), but the array given has shape \(formatShape(t.shape)).")
        }
        try setWeights(values.map { $0.dtype == .float32 ? $0.floats : $0.ints.map(Float.init) })
    }

    /// The number of weight values (Keras' `count_params()`).
    public func countParams() -> Int { operations.reduce(0) { $0 + $1.countParams() } }

    // MARK: - Keeping the library and the layers in step

    /// Copies the library's weights into layers the user has not changed since.
    func pullFromLibrary() {
        guard let lib = library else { return }
        let all = lib.getWeights()
        var i = 0
        for l in weightLayers {
            let n = l.weightShapes.count
            if libraryVersions[ObjectIdentifier(l)] == l.version, i + n <= all.count {
                l.syncWeights(all[i..<i + n].map(\.floats))
            }
            i += n
        }
    }

    /// Sends the weights of layers changed since the last sync to the library.
    func pushToLibrary() throws {
        guard let lib = library else { return }
        let layers = weightLayers
        guard layers.contains(where: { libraryVersions[ObjectIdentifier($0)] != $0.version }) else { return }
        pullFromLibrary()
        try lib.setWeights(layers.flatMap { $0.getWeights() })
        markSynced()
    }

    func markSynced() {
        libraryVersions = Dictionary(uniqueKeysWithValues: weightLayers.map { (ObjectIdentifier($0), $0.version) })
    }

    /// Drops the loaded library (after keeping its weights): the next run compiles anew.
    func invalidateLibrary() {
        pullFromLibrary()
        library = nil
        libraryVersions = [:]
    }

    /// Adds layers after the last output (Sequential.add).
    func append(_ layer: Layer) throws {
        guard outputs.count == 1 else { throw KerasAPIError("model '\(name)' has \(outputs.count) outputs; add needs one.") }
        let out = layer(outputs[0])
        if let e = out.error { throw e }
        invalidateLibrary()
        outputs = [out]
        try mapGraph()
    }
}

/// A plain stack of layers, each taking the previous one's output (Keras' `Sequential`).
///
///     let model = try Sequential([
///         Conv2D(8, kernelSize: 3, activation: .relu),
///         MaxPooling2D(),
///         Flatten(),
///         Dense(10, activation: .softmax),
///     ], input: Input(shape: [28, 28, 1]))
public final class Sequential: KerasModel {
    /// - Parameters:
    ///   - layers: the layers, first to last; each takes one input.
    ///   - input: the model input, from ``Input(shape:dtype:name:)``.
    ///   - name: the model name (default `sequential`, `sequential_1`, ...).
    /// - Throws: the first layer's shape error (a `ShapeError` naming the layer,
    ///   both shapes and a hint) or a ``KerasAPIError``.
    public init(_ layers: [Layer], input: KerasTensor, name: String? = nil) throws {
        var t = input
        for l in layers { t = l(t) }
        try super.init(name: name ?? Keras.uniqueName("sequential"), inputs: [input], outputs: [t], sequential: true)
    }

    /// Adds a layer on top, as Keras' `model.add`.
    /// - Parameters:
    ///   - layer: a layer taking one input.
    public func add(_ layer: Layer) throws { try append(layer) }
}

/// A model given by its input and output tensors (Keras' functional `Model`).
///
///     let a = Input(shape: [4]), b = Input(shape: [3])
///     let h = Concatenate()([Dense(8, activation: .relu)(a), b])
///     let model = try FunctionalModel(inputs: [a, b], outputs: [Dense(1)(h)])
public final class FunctionalModel: KerasModel {
    /// - Parameters:
    ///   - inputs: tensors from ``Input(shape:dtype:name:)``, in the order `predict` takes them.
    ///   - outputs: tensors computed from the inputs, in the order `predict` returns them.
    ///   - name: the model name (default `functional`, `functional_1`, ...).
    /// - Throws: the first shape error on the way to an output, or a
    ///   ``KerasAPIError`` when an output needs an input that is not listed.
    public init(inputs: [KerasTensor], outputs: [KerasTensor], name: String? = nil) throws {
        try super.init(name: name ?? Keras.uniqueName("functional"), inputs: inputs, outputs: outputs, sequential: false)
    }

    /// A model with one input and one output.
    /// - Parameters:
    ///   - inputs: the input tensor.
    ///   - outputs: the output tensor.
    ///   - name: the model name.
    public convenience init(inputs: KerasTensor, outputs: KerasTensor, name: String? = nil) throws {
        try self.init(inputs: [inputs], outputs: [outputs], name: name)
    }
}
