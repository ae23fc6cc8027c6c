// A model as the frontends hand it to the compiler: the layer-level graph,
// the layers for `kiln summary`, and how to train it.

/// One layer, for the summary table.
public struct LayerInfo: Sendable {
    public var name: String
    public var className: String
    public var outputs: [Value]
    public var paramCount: Int
    public var trainableCount: Int
    /// The tensors feeding it, as Keras' summary names them: "layer[node][tensor]".
    public var inbound: [String]
    /// Called more than once (a shared layer): its outputs are one per call.
    public var shared = false
    public init(name: String, className: String, outputs: [Value], paramCount: Int, trainableCount: Int, inbound: [String]) {
        self.name = name; self.className = className; self.outputs = outputs
        self.paramCount = paramCount; self.trainableCount = trainableCount; self.inbound = inbound
    }
}

/// A Keras loss with its options.
public struct LossConfig: Sendable, Equatable {
    /// Canonical Keras function name, e.g. "mean_squared_error".
    public var name: String
    public var fromLogits: Bool
    public var labelSmoothing: Float
    /// The CRF loss ("crf"): the name of the CRF layer it trains (Keras' CRFLoss config "crf"),
    /// which must produce the output; nil takes the CRF that produces it.
    public var crfLayer: String? = nil
    public init(name: String, fromLogits: Bool = false, labelSmoothing: Float = 0) {
        self.name = name; self.fromLogits = fromLogits; self.labelSmoothing = labelSmoothing
    }
}

/// A Keras optimizer with its hyper-parameters (Keras defaults filled in).
public struct OptimizerConfig: Sendable, Equatable {
    /// Keras class name: SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam.
    public var name: String
    public var learningRate: Float
    /// Class-specific settings by Keras config key (momentum, rho, beta_1, epsilon, ...).
    public var settings: [String: Float]
    public var flags: [String: Bool]
    public var clipnorm: Float?
    public var clipvalue: Float?
    public var globalClipnorm: Float?
    /// Decoupled weight decay: w -= w * weight_decay * lr before each update.
    public var weightDecay: Float? = nil
    /// Optimizer state saved by Keras after fit (`optimizer/vars/N`), to continue from it; nil = fresh state.
    public var resume: OptimizerResume? = nil
    public init(name: String, learningRate: Float, settings: [String: Float] = [:], flags: [String: Bool] = [:],
                clipnorm: Float? = nil, clipvalue: Float? = nil, globalClipnorm: Float? = nil) {
        self.name = name; self.learningRate = learningRate; self.settings = settings; self.flags = flags
        self.clipnorm = clipnorm; self.clipvalue = clipvalue; self.globalClipnorm = globalClipnorm
    }
    public func setting(_ key: String, _ fallback: Float) -> Float { settings[key] ?? fallback }
    public func flag(_ key: String) -> Bool { flags[key] ?? false }
}

/// Keras' saved optimizer variables: `iterations` (steps taken) and, in Keras' order, the
/// variables after `iteration` and `learning_rate` (per trainable weight, slots interleaved
/// within one `add_optimizer_variables` call; Nadam's u_product last).
public struct OptimizerResume: Sendable, Equatable {
    public var iterations: Int
    public var slots: [[Float]]
    public init(iterations: Int, slots: [[Float]]) { self.iterations = iterations; self.slots = slots }
}

/// How a model trains: one loss per output, one optimizer.
public struct TrainingConfig: Sendable, Equatable {
    public var losses: [LossConfig]
    public var lossWeights: [Float]?
    public var optimizer: OptimizerConfig
    public var metrics: [String]
    public init(losses: [LossConfig], lossWeights: [Float]? = nil, optimizer: OptimizerConfig, metrics: [String] = []) {
        self.losses = losses; self.lossWeights = lossWeights; self.optimizer = optimizer; self.metrics = metrics
    }
}

/// A model ready for the pass pipeline.
public struct Model: Sendable {
    public var graph: Graph
    public var layers: [LayerInfo]
    public var training: TrainingConfig?
    public var isSequential: Bool
    /// Optimizer variables saved with the model (shown by the summary, as Keras does).
    public var optimizerParamCount = 0
    public init(graph: Graph, layers: [LayerInfo], training: TrainingConfig?, isSequential: Bool) {
        self.graph = graph; self.layers = layers; self.training = training; self.isSequential = isSequential
    }
}
