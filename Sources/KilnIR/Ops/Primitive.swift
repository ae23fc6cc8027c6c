// The primitive table: every rule of a primitive, asked of its family.
//
// A primitive family (one file of Ops/) answers, for each of its ops, every
// question a pass, the printer, the interpreter or codegen asks. The protocol has
// no default implementations, so a family without a rule does not compile, and
// `PrimOp.family` (Ops.swift) is an exhaustive switch, so neither does a primitive
// without a family. Adding a primitive: its case in `PrimOp`, its line in
// `PrimOp.family`, and a family file (or the cases in an existing one).

/// What a primitive does besides computing its outputs.
public struct PrimEffects: Hashable, Sendable {
    /// Common-subexpression elimination may merge two applications to the same inputs.
    public var mergeable: Bool
    /// Dead-code elimination may remove an application whose outputs nobody uses.
    public var removable: Bool
    public init(mergeable: Bool, removable: Bool) { self.mergeable = mergeable; self.removable = removable }
    /// A pure function of its inputs.
    public static let none = PrimEffects(mergeable: true, removable: true)
}

/// The rules of a family of primitive ops. Each requirement is called only with
/// ops of the family (those `PrimOp.family` maps to it).
public protocol PrimitiveFamily {
    /// Output types from input types; a ShapeError names the layer and the op.
    static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType]

    /// Reverse mode: the gradients of node n's inputs (nil: none, or not differentiable)
    /// given those of its outputs (`dys`, nil where an output is unused; at least one is not),
    /// appended to the builder's graph. Ops that appear only after autodiff throw.
    static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?]

    /// The float64 meaning (the tests' reference): one array per output, row-major,
    /// given the inputs and the outputs' concrete dimensions. Plain loops, independent
    /// of the kernel.
    static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]]

    /// The steps that compute node n of graph g (loop kernels, runtime calls).
    static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step]

    /// The printed form, as `--print-after` and the golden tests show it.
    static func describe(_ op: PrimOp) -> String

    /// The op as an elementwise expression over its inputs that the elementwise fuser
    /// may merge with its neighbours; nil if it is not fusable.
    static func fusedForm(_ op: PrimOp) -> FusedExpr?

    /// Whether the op may be merged by CSE and removed when unused.
    static func effects(_ op: PrimOp) -> PrimEffects
}

/// For the rules of a family: an op the family does not hold (PrimOp.family never sends one).
func notInFamily(_ op: PrimOp, _ family: Any.Type, file: StaticString = #file, line: UInt = #line) -> Never {
    preconditionFailure("\(op) is not an op of \(family)", file: file, line: line)
}

extension PrimOp {
    /// The op as a fusable elementwise expression, if it is one (its family's `fusedForm`).
    public var fusedForm: FusedExpr? { family.fusedForm(self) }
    /// What the op does besides computing its outputs (its family's `effects`).
    public var effects: PrimEffects { family.effects(self) }
}

/// Infers the output types of a primitive (its family's `infer`).
public func inferPrim(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
    try op.family.infer(op, ins, layer: layer)
}

/// Steps for one primitive node of graph g (its family's `kernel`).
public func kernelSteps(_ n: Node, in g: Graph) -> [Step] {
    guard case .prim(let op) = n.op else { preconditionFailure("kernelSteps: layer op \(n.op) reached codegen; lowering must run first") }
    return op.family.kernel(op, n, in: g)
}

/// A ShapeError for a primitive: "op: message".
func primShapeError(_ op: PrimOp, layer: String, _ message: String) -> ShapeError {
    ShapeError(layer: layer, "\(op): " + message)
}

/// Numpy broadcasting of two input types, or a ShapeError for the op.
func broadcastTypes(_ op: PrimOp, _ a: TensorType, _ b: TensorType, layer: String) throws -> [Dim] {
    guard let s = broadcastShapes(a.shape, b.shape) else { throw primShapeError(op, layer: layer, "shapes \(a) and \(b) do not broadcast") }
    return s
}
