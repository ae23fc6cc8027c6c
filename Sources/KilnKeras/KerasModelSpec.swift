// The neutral, validated form of a Keras 3 `.keras` file: what the archive
// reader hands to the graph builder. Nothing from the file is ever executed.

import KilnSupport

/// A weight array read from model.weights.h5, converted to float32.
public struct KerasWeight: Sendable {
    /// Path inside the h5 file, e.g. "layers/dense/vars/0".
    public var path: String
    public var shape: [Int]
    public var values: [Float]
    public init(path: String, shape: [Int], values: [Float]) {
        self.path = path; self.shape = shape; self.values = values
    }
}

/// A reference to one output tensor of a layer (Functional graph edges).
public struct KerasTensorRef: Equatable, Sendable {
    public var layer: String
    public var nodeIndex: Int
    public var tensorIndex: Int
    public init(layer: String, nodeIndex: Int, tensorIndex: Int) {
        self.layer = layer; self.nodeIndex = nodeIndex; self.tensorIndex = tensorIndex
    }
}

/// One call of a layer in a Functional graph: its positional tensor inputs
/// and keyword tensor arguments (e.g. `mask=`), as written in config.json.
public struct KerasNodeCall: Sendable {
    public var inputs: [KerasTensorRef]
    public var kwargs: [(String, KerasTensorRef)]
    public init(inputs: [KerasTensorRef], kwargs: [(String, KerasTensorRef)] = []) {
        self.inputs = inputs; self.kwargs = kwargs
    }
}

/// One layer: Keras class name, name, its full config, its calls (empty for
/// Sequential models and InputLayers) and its weights in Keras
/// `layer.weights` order (for wrappers: the wrapped layers' weights, flattened
/// in that order).
public struct KerasLayerSpec: Sendable {
    public var className: String
    public var name: String
    public var config: JSON
    public var calls: [KerasNodeCall]
    public var weights: [KerasWeight]
    public init(className: String, name: String, config: JSON, calls: [KerasNodeCall], weights: [KerasWeight]) {
        self.className = className; self.name = name; self.config = config; self.calls = calls; self.weights = weights
    }
}

/// The whole model.
public struct KerasModelSpec: Sendable {
    public enum Kind: Sendable { case sequential, functional }
    public var kind: Kind
    public var name: String
    /// Layers in the order of the file (that is, of `model.layers`; for a
    /// Sequential model whose first layer is an InputLayer, that one too).
    public var layers: [KerasLayerSpec]
    /// Functional: the model's input and output tensors. Sequential: empty.
    public var inputs: [KerasTensorRef]
    public var outputs: [KerasTensorRef]
    /// The `compile_config` object, if the model was saved after compile().
    public var compileConfig: JSON?
    /// Elements of the optimizer variables saved in the file (Keras' "Optimizer params").
    public var optimizerParamCount = 0
    /// The optimizer variables themselves (`optimizer/vars/0`, `/1`, ...), empty when none were saved.
    public var optimizerVars: [[Float]] = []
    public init(kind: Kind, name: String, layers: [KerasLayerSpec], inputs: [KerasTensorRef],
                outputs: [KerasTensorRef], compileConfig: JSON?) {
        self.kind = kind; self.name = name; self.layers = layers; self.inputs = inputs
        self.outputs = outputs; self.compileConfig = compileConfig
    }
}

/// An error reading a model file: one sentence naming the file and the problem.
public struct KerasImportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
