import KilnIR

/// Builds the training-step and evaluation graphs.
public enum TrainingBuilder {
    public static let enabled = false
    public struct Result { public var graph: Graph; public var loss: Value; public var targets: [(String, TensorType)] }
    public static func build(_ g: Graph, _ cfg: TrainingConfig, observe: (String, Graph) -> Void) throws -> (Result, Result) {
        throw ShapeError(layer: g.name, "training is not implemented yet")
    }
}
