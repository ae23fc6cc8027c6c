// Loads any library `kiln compile` wrote (libNAME.so) through dlopen and the
// name-free `kiln_entry` table, and runs it on HostTensors.
//
// The structs of Runtime/kiln_abi.h are read through raw pointers at the
// offsets the CKilnABI module (the header itself, imported by Clang) gives
// (see ABI below); CompiledLibraryTests also compares them with the offsetof
// values of a C program built by the system's C compiler.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import KilnSupport
import CKilnABI

/// An error from loading or calling a compiled library; the message is one sentence.
public struct KilnRuntimeError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A model input, output or training target as the library declares it.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var dtype: HostDType
    /// -1 for the batch (first) dimension and any other free dimension.
    public var shape: [Int]

    public init(name: String, dtype: HostDType, shape: [Int]) {
        self.name = name; self.dtype = dtype; self.shape = shape
    }

    /// Elements per row, or nil when a dimension after the first is free.
    public var rowElements: Int? {
        let rest = shape.dropFirst()
        return rest.contains(where: { $0 < 0 }) ? nil : rest.reduce(1, *)
    }

    /// Elements per row when the free dimensions after the first have `steps` entries.
    public func rowElements(steps: Int) -> Int { shape.dropFirst().reduce(1) { $0 * ($1 < 0 ? steps : $1) } }

    /// Whether axis 1 is a free number of time steps.
    public var hasFreeSteps: Bool { shape.count > 1 && shape[1] < 0 }

    /// The shape as Python prints it, e.g. (-1, 28, 28, 1).
    public var shapeText: String { formatShape(shape) }
}

/// One weight in Keras `get_weights()` order.
public struct WeightSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var trainable: Bool

    public init(name: String, shape: [Int], trainable: Bool) {
        self.name = name; self.shape = shape; self.trainable = trainable
    }

    public var count: Int { shape.reduce(1, *) }
}

/// Offsets and sizes of the kiln_abi.h structs, as the C compiler lays them out (the CKilnABI
/// module imports the header itself, so they cannot drift from the runtime's).
enum ABI {
    static let version = Int32(KILN_ABI_VERSION)
    static let maxRank = Int(KILN_MAX_RANK)

    private static func at<T>(_ path: PartialKeyPath<T>) -> Int { MemoryLayout<T>.offset(of: path)! }

    enum TensorDesc {   // kiln_tensor_desc
        static let name = at(\kiln_tensor_desc.name), dtype = at(\kiln_tensor_desc.dtype), rank = at(\kiln_tensor_desc.rank)
        static let shape = at(\kiln_tensor_desc.shape), size = MemoryLayout<kiln_tensor_desc>.stride
    }
    enum WeightDesc {   // kiln_weight_desc
        static let name = at(\kiln_weight_desc.name), rank = at(\kiln_weight_desc.rank), shape = at(\kiln_weight_desc.shape)
        static let offset = at(\kiln_weight_desc.offset), count = at(\kiln_weight_desc.count)
        static let trainable = at(\kiln_weight_desc.trainable), size = MemoryLayout<kiln_weight_desc>.stride
    }
    enum ModelDesc {    // kiln_model_desc
        static let abiVersion = at(\kiln_model_desc.abi_version), name = at(\kiln_model_desc.name)
        static let numInputs = at(\kiln_model_desc.num_inputs), numOutputs = at(\kiln_model_desc.num_outputs)
        static let numWeights = at(\kiln_model_desc.num_weights), inputs = at(\kiln_model_desc.inputs)
        static let outputs = at(\kiln_model_desc.outputs), targets = at(\kiln_model_desc.targets), weights = at(\kiln_model_desc.weights)
        static let stateBytes = at(\kiln_model_desc.state_bytes), initState = at(\kiln_model_desc.init_state)
        static let predict = at(\kiln_model_desc.predict), train = at(\kiln_model_desc.train), evaluate = at(\kiln_model_desc.evaluate)
        static let loss = at(\kiln_model_desc.loss), optimizer = at(\kiln_model_desc.optimizer)
        static let numMetrics = at(\kiln_model_desc.num_metrics), metricNames = at(\kiln_model_desc.metric_names)
        static let initStateBytes = at(\kiln_model_desc.init_state_bytes), freeSteps = at(\kiln_model_desc.free_steps)
        static let predictArenaPerRowStep = at(\kiln_model_desc.predict_arena_per_row_step)
        static let predictArenaPerStep = at(\kiln_model_desc.predict_arena_per_step)
        static let trainArenaPerRowStep = at(\kiln_model_desc.train_arena_per_row_step)
        static let trainArenaPerStep = at(\kiln_model_desc.train_arena_per_step)
        static let fixedBatch = at(\kiln_model_desc.fixed_batch), numCarried = at(\kiln_model_desc.num_carried)
        static let size = MemoryLayout<kiln_model_desc>.stride
    }
    enum API {          // kiln_api
        static let abiVersion = at(\kiln_api.abi_version), structSize = at(\kiln_api.struct_size), desc = at(\kiln_api.desc)
        static let create = at(\kiln_api.create), destroy = at(\kiln_api.destroy), predict = at(\kiln_api.predict)
        static let reserve = at(\kiln_api.reserve), trainStep = at(\kiln_api.train_step), evaluate = at(\kiln_api.evaluate)
        static let numWeights = at(\kiln_api.num_weights), getWeight = at(\kiln_api.get_weight)
        static let setWeight = at(\kiln_api.set_weight), saveWeights = at(\kiln_api.save_weights), loadWeights = at(\kiln_api.load_weights)
        static let setSeed = at(\kiln_api.set_seed), iterations = at(\kiln_api.iterations), lastError = at(\kiln_api.last_error)
        static let lastMetrics = at(\kiln_api.last_metrics), predictSteps = at(\kiln_api.predict_steps)
        static let trainStepSteps = at(\kiln_api.train_step_steps), evaluateSteps = at(\kiln_api.evaluate_steps)
        static let setNumThreads = at(\kiln_api.set_num_threads), size = MemoryLayout<kiln_api>.stride
        static let resetStates = at(\kiln_api.reset_states)
        /// The smallest table this loader reads (libraries from before set_num_threads).
        static let minimumSize = setNumThreads
    }
}

typealias IOPointers = UnsafePointer<UnsafeRawPointer?>
typealias OutPointers = UnsafePointer<UnsafeMutableRawPointer?>

/// The runtime functions of one library, from its kiln_api table.
struct RuntimeFunctions {
    typealias Create = @convention(c) (UnsafeRawPointer?) -> OpaquePointer?
    typealias Destroy = @convention(c) (OpaquePointer?) -> Void
    typealias Predict = @convention(c) (OpaquePointer?, IOPointers?, OutPointers?, Int64) -> Int32
    typealias Reserve = @convention(c) (OpaquePointer?, Int64) -> Int32
    typealias Step = @convention(c) (OpaquePointer?, IOPointers?, IOPointers?, Int64, UnsafeMutablePointer<Float>?) -> Int32
    typealias Count = @convention(c) (OpaquePointer?) -> Int64
    typealias GetWeight = @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<Float>?, Int64) -> Int32
    typealias SetWeight = @convention(c) (OpaquePointer?, Int32, UnsafePointer<Float>?, Int64) -> Int32
    typealias PathFn = @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Int32
    typealias SetSeed = @convention(c) (OpaquePointer?, UInt64) -> Void
    typealias LastError = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    typealias LastMetrics = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Float>?, Int32) -> Int32
    typealias PredictSteps = @convention(c) (OpaquePointer?, IOPointers?, OutPointers?, Int64, Int64) -> Int32
    typealias StepSteps = @convention(c) (OpaquePointer?, IOPointers?, IOPointers?, Int64, Int64, UnsafeMutablePointer<Float>?) -> Int32
    typealias SetNumThreads = @convention(c) (OpaquePointer?, Int32) -> Int32
    typealias ResetStates = @convention(c) (OpaquePointer?) -> Int32

    var create: Create, destroy: Destroy, predict: Predict, reserve: Reserve
    var trainStep: Step, evaluate: Step, numWeights: Count, getWeight: GetWeight, setWeight: SetWeight
    var saveWeights: PathFn, loadWeights: PathFn, setSeed: SetSeed, iterations: Count, lastError: LastError
    var lastMetrics: LastMetrics?
    var predictSteps: PredictSteps, trainStepSteps: StepSteps, evaluateSteps: StepSteps
    /// nil in libraries from before the thread pool.
    var setNumThreads: SetNumThreads?
    /// nil in libraries from before stateful layers.
    var resetStates: ResetStates?

    /// nil when a slot of the table is empty.
    init?(api: UnsafeRawPointer) {
        func fn<F>(_ offset: Int, _: F.Type) -> F? {
            guard let p = api.load(fromByteOffset: offset, as: UnsafeRawPointer?.self) else { return nil }
            return unsafeBitCast(p, to: F.self)
        }
        typealias A = ABI.API
        guard let create = fn(A.create, Create.self), let destroy = fn(A.destroy, Destroy.self),
              let predict = fn(A.predict, Predict.self), let reserve = fn(A.reserve, Reserve.self),
              let trainStep = fn(A.trainStep, Step.self), let evaluate = fn(A.evaluate, Step.self),
              let numWeights = fn(A.numWeights, Count.self), let getWeight = fn(A.getWeight, GetWeight.self),
              let setWeight = fn(A.setWeight, SetWeight.self), let saveWeights = fn(A.saveWeights, PathFn.self),
              let loadWeights = fn(A.loadWeights, PathFn.self), let setSeed = fn(A.setSeed, SetSeed.self),
              let iterations = fn(A.iterations, Count.self), let lastError = fn(A.lastError, LastError.self),
              api.load(fromByteOffset: A.structSize, as: Int32.self) >= Int32(A.minimumSize),
              let predictSteps = fn(A.predictSteps, PredictSteps.self), let trainStepSteps = fn(A.trainStepSteps, StepSteps.self),
              let evaluateSteps = fn(A.evaluateSteps, StepSteps.self)
        else { return nil }
        self.predictSteps = predictSteps; self.trainStepSteps = trainStepSteps; self.evaluateSteps = evaluateSteps
        self.create = create; self.destroy = destroy; self.predict = predict; self.reserve = reserve
        self.trainStep = trainStep; self.evaluate = evaluate; self.numWeights = numWeights
        self.getWeight = getWeight; self.setWeight = setWeight; self.saveWeights = saveWeights
        self.loadWeights = loadWeights; self.setSeed = setSeed; self.iterations = iterations
        self.lastError = lastError
        let size = api.load(fromByteOffset: A.structSize, as: Int32.self)
        if size >= Int32(A.lastMetrics + 8) { self.lastMetrics = fn(A.lastMetrics, LastMetrics.self) }
        if size >= Int32(A.setNumThreads + 8) { self.setNumThreads = fn(A.setNumThreads, SetNumThreads.self) }
        if size >= Int32(A.resetStates + 8) { self.resetStates = fn(A.resetStates, ResetStates.self) }
    }
}

/// Tensor data ready for the library: the declared dtype, rows x rowElements.
enum PreparedData {
    case floats([Float])
    case ints([Int32])

    func withRawPointer<R>(_ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        switch self {
        case .floats(let a): return try a.withUnsafeBytes { try body($0.baseAddress ?? UnsafeRawPointer(bitPattern: 64)!) }
        case .ints(let a): return try a.withUnsafeBytes { try body($0.baseAddress ?? UnsafeRawPointer(bitPattern: 64)!) }
        }
    }
}

struct Prepared {
    var data: PreparedData
    var rows: Int
    var rowElements: Int
    /// The length of axis 1 when the spec leaves it free (a sequence of any length).
    var steps: Int? = nil
}

/// Calls body with raw pointers to every array at once.
func withRawPointers<R>(_ list: [Prepared], _ body: ([UnsafeRawPointer]) throws -> R) throws -> R {
    func go(_ i: Int, _ acc: [UnsafeRawPointer]) throws -> R {
        if i == list.count { return try body(acc) }
        return try list[i].data.withRawPointer { try go(i + 1, acc + [$0]) }
    }
    return try go(0, [])
}

/// One compiled model library (dlopen'd) and one instance of its model.
///
/// Not thread-safe: use one CompiledLibrary per thread. Several objects may
/// load the same file; their instances are independent.
public final class CompiledLibrary {
    /// The file this was loaded from.
    public let path: String
    public let name: String
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    /// One per output when the model trains; empty otherwise.
    public let targets: [TensorSpec]
    public let weights: [WeightSpec]
    public let loss: String
    public let optimizer: String
    public let canTrain: Bool
    /// Metrics each train/evaluate step reports (Keras history names).
    public let metrics: [String]
    /// The batch size every call must have when the model has stateful recurrent layers
    /// (the state they carry between calls has that many rows); nil otherwise.
    public let fixedBatch: Int?

    /// The metric values (batch means) of the last train/evaluate step, in `metrics` order.
    public func lastMetrics() -> [Float] {
        guard !metrics.isEmpty, let f = fns.lastMetrics else { return [] }
        var out = [Float](repeating: .nan, count: metrics.count)
        _ = out.withUnsafeMutableBufferPointer { f(instance, $0.baseAddress, Int32(metrics.count)) }
        return out
    }

    private let handle: UnsafeMutableRawPointer
    /// The runtime instance and functions (internal for tests).
    let instance: OpaquePointer
    let fns: RuntimeFunctions

    /// Loads `path` and creates an instance with the weights it embeds.
    /// - Throws: ``KilnRuntimeError`` naming the file when it cannot be
    ///   loaded, has no `kiln_entry`, or was built for another ABI version.
    public init(path: String) throws {
        // dlopen searches the library path for names without a slash; a
        // command-line argument means a file.
        let file = path.contains("/") ? path : "./" + path
        if access(file, F_OK) != 0 {
            throw KilnRuntimeError("cannot load compiled library '\(path)': no such file.")
        }
        guard let h = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw KilnRuntimeError("cannot load compiled library '\(path)': \(why)")
        }
        var ok = false
        defer { if !ok { dlclose(h) } }
        guard let sym = dlsym(h, "kiln_entry") else {
            throw KilnRuntimeError("'\(path)' is not a Kiln model library: it has no kiln_entry function.")
        }
        typealias Entry = @convention(c) () -> UnsafeRawPointer?
        guard let api = unsafeBitCast(sym, to: Entry.self)() else {
            throw KilnRuntimeError("'\(path)' is not a usable Kiln model library: kiln_entry() returned NULL.")
        }
        let apiVersion = api.load(fromByteOffset: ABI.API.abiVersion, as: Int32.self)
        let apiSize = api.load(fromByteOffset: ABI.API.structSize, as: Int32.self)
        guard apiVersion == ABI.version, apiSize >= ABI.API.minimumSize,
              let desc = api.load(fromByteOffset: ABI.API.desc, as: UnsafeRawPointer?.self),
              desc.load(fromByteOffset: ABI.ModelDesc.abiVersion, as: Int32.self) == ABI.version,
              let fns = RuntimeFunctions(api: api)
        else {
            throw KilnRuntimeError("'\(path)' was built for Kiln library ABI version \(apiVersion), but this kiln reads version \(ABI.version); recompile the model with this kiln.")
        }
        typealias M = ABI.ModelDesc
        func string(_ p: UnsafeRawPointer, _ offset: Int) -> String {
            p.load(fromByteOffset: offset, as: UnsafePointer<CChar>?.self).map { String(cString: $0) } ?? ""
        }
        func tensors(_ offset: Int, _ count: Int32) throws -> [TensorSpec] {
            guard count > 0, let base = desc.load(fromByteOffset: offset, as: UnsafeRawPointer?.self) else { return [] }
            return try (0..<Int(count)).map { i in
                let t = base + i * ABI.TensorDesc.size
                let rank = Int(t.load(fromByteOffset: ABI.TensorDesc.rank, as: Int32.self))
                let dt = t.load(fromByteOffset: ABI.TensorDesc.dtype, as: Int32.self)
                guard (0...ABI.maxRank).contains(rank), dt == 0 || dt == 1 else {
                    throw KilnRuntimeError("'\(path)' has a malformed model description (tensor \(i) has rank \(rank), dtype \(dt)).")
                }
                let shape = (0..<rank).map { Int(t.load(fromByteOffset: ABI.TensorDesc.shape + 8 * $0, as: Int64.self)) }
                return TensorSpec(name: string(t, ABI.TensorDesc.name), dtype: dt == 1 ? .int32 : .float32, shape: shape)
            }
        }
        let numInputs = desc.load(fromByteOffset: M.numInputs, as: Int32.self)
        let numOutputs = desc.load(fromByteOffset: M.numOutputs, as: Int32.self)
        let numWeights = desc.load(fromByteOffset: M.numWeights, as: Int32.self)
        let inputs = try tensors(M.inputs, numInputs)
        let outputs = try tensors(M.outputs, numOutputs)
        var weights: [WeightSpec] = []
        if numWeights > 0, let base = desc.load(fromByteOffset: M.weights, as: UnsafeRawPointer?.self) {
            for i in 0..<Int(numWeights) {
                let w = base + i * ABI.WeightDesc.size
                let rank = min(max(Int(w.load(fromByteOffset: ABI.WeightDesc.rank, as: Int32.self)), 0), ABI.maxRank)
                let shape = (0..<rank).map { Int(w.load(fromByteOffset: ABI.WeightDesc.shape + 8 * $0, as: Int64.self)) }
                weights.append(WeightSpec(name: string(w, ABI.WeightDesc.name), shape: shape,
                                          trainable: w.load(fromByteOffset: ABI.WeightDesc.trainable, as: Int32.self) != 0))
            }
        }
        let canTrain = desc.load(fromByteOffset: M.train, as: UnsafeRawPointer?.self) != nil
        let targets = canTrain ? try tensors(M.targets, numOutputs) : []
        guard let inst = fns.create(desc) else {
            let why = fns.lastError(nil).map { String(cString: $0) } ?? ""
            throw KilnRuntimeError("cannot create an instance of the model in '\(path)': \(why)")
        }
        self.path = path
        self.name = string(desc, M.name)
        self.inputs = inputs
        self.outputs = outputs
        self.targets = targets
        self.weights = weights
        self.loss = string(desc, M.loss)
        self.optimizer = string(desc, M.optimizer)
        let numMetrics = Int(desc.load(fromByteOffset: M.numMetrics, as: Int32.self))
        var metricNames: [String] = []
        if numMetrics > 0, let names = desc.load(fromByteOffset: M.metricNames, as: UnsafePointer<UnsafePointer<CChar>?>?.self) {
            metricNames = (0..<numMetrics).map { names[$0].map { String(cString: $0) } ?? "metric_\($0)" }
        }
        self.metrics = metricNames
        // Libraries from before stateful layers have no such fields (their table is shorter).
        if fns.resetStates != nil, desc.load(fromByteOffset: M.numCarried, as: Int32.self) > 0 {
            self.fixedBatch = Int(desc.load(fromByteOffset: M.fixedBatch, as: Int64.self))
        } else {
            self.fixedBatch = nil
        }
        self.canTrain = canTrain
        self.handle = h
        self.instance = inst
        self.fns = fns
        ok = true
    }

    deinit {
        fns.destroy(instance)
        dlclose(handle)
    }

    private var lastError: String {
        fns.lastError(instance).map { String(cString: $0) } ?? "unknown error"
    }

    private func check(_ status: Int32) throws {
        if status != 0 { throw KilnRuntimeError(lastError) }
    }

    // MARK: - Validation

    /// Checks `t` against `spec` and converts it to the declared dtype.
    /// A shape matches when it has the spec's rank and every fixed dimension
    /// equal, or when it differs only by dimensions of size 1 (Keras accepts
    /// sparse labels of shape (n,) for (n, 1)).
    func prepare(_ t: HostTensor, _ spec: TensorSpec, role: String) throws -> Prepared {
        let what = "\(role) '\(spec.name)'"
        guard let rows = t.shape.first else {
            throw KilnRuntimeError("\(what) expects shape \(spec.shapeText), found a scalar.")
        }
        let want = Array(spec.shape.dropFirst()), have = Array(t.shape.dropFirst())
        let exact = want.count == have.count && zip(want, have).allSatisfy { $0 < 0 || $0 == $1 }
        let squeezed = !want.contains(where: { $0 < 0 }) && want.filter { $0 != 1 } == have.filter { $0 != 1 }
        guard exact || squeezed else {
            // Images (n, channels, height, width) for a model that takes (n, height, width, channels).
            if want.count == 3, have == [want[2], want[0], want[1]] {
                throw KilnRuntimeError("\(what) expects shape \(spec.shapeText), found \(formatShape(t.shape)), which looks channels_first "
                                       + "(channels, height, width); the model is channels_last: move the channel axis last (numpy.moveaxis(x, 1, -1)).")
            }
            throw KilnRuntimeError("\(what) expects shape \(spec.shapeText), found \(formatShape(t.shape)).")
        }
        let rowElements = have.reduce(1, *)
        let steps = spec.hasFreeSteps && exact ? have[0] : nil
        switch (spec.dtype, t.dtype) {
        case (.float32, .float32):
            return Prepared(data: .floats(t.floats), rows: rows, rowElements: rowElements, steps: steps)
        case (.float32, .int32):
            return Prepared(data: .floats(t.ints.map { Float($0) }), rows: rows, rowElements: rowElements, steps: steps)
        case (.int32, .int32):
            return Prepared(data: .ints(t.ints), rows: rows, rowElements: rowElements, steps: steps)
        case (.int32, .float32):
            var ints = [Int32]()
            ints.reserveCapacity(t.count)
            for v in t.floats {
                guard v.rounded() == v, v >= -2147483648, v < 2147483648 else {
                    throw KilnRuntimeError("\(what) takes int32 values (e.g. token ids or labels), found float32 values such as \(v) that are not whole numbers.")
                }
                ints.append(Int32(v))
            }
            return Prepared(data: .ints(ints), rows: rows, rowElements: rowElements, steps: steps)
        }
    }

    /// The number of time steps of a call: the length of every free axis 1, which must agree
    /// (0 for a model without one).
    func steps(_ lists: [Prepared]...) throws -> Int {
        var found: Int? = nil
        for p in lists.joined() {
            guard let s = p.steps else { continue }
            if let f = found, f != s {
                throw KilnRuntimeError("model '\(name)' got sequences of \(f) and \(s) time steps in one call; every input and target needs the same length.")
            }
            found = s
        }
        return found ?? 0
    }

    /// Validates a list of tensors against specs; all must have the same rows.
    func prepareAll(_ list: [HostTensor], _ specs: [TensorSpec], role: String, plural: String,
                    rows expected: Int? = nil) throws -> (prepared: [Prepared], rows: Int) {
        guard list.count == specs.count else {
            throw KilnRuntimeError("model '\(name)' takes \(specs.count) \(specs.count == 1 ? role : plural), but \(list.count) \(list.count == 1 ? "was" : "were") given.")
        }
        let prepared = try zip(list, specs).map { try prepare($0, $1, role: role) }
        var rows = expected
        for (p, s) in zip(prepared, specs) {
            if let r = rows, r != p.rows {
                throw KilnRuntimeError("\(role) '\(s.name)' has \(p.rows) rows, but the other arrays have \(r); every input and target needs the same number of rows.")
            }
            rows = p.rows
        }
        return (prepared, rows ?? 0)
    }

    // MARK: - Running

    /// Runs the forward pass (inference) over every row, `batchSize` rows per call.
    /// - Returns: one tensor per output, shaped like the output with the batch filled in.
    public func predict(_ inputs: [HostTensor], batchSize: Int = 256) throws -> [HostTensor] {
        guard batchSize >= 1 else { throw KilnRuntimeError("the batch size must be at least 1 (got \(batchSize)).") }
        let (prepared, rows) = try prepareAll(inputs, self.inputs, role: "input", plural: "inputs")
        let steps = try self.steps(prepared)
        let outElems = outputs.map { $0.rowElements(steps: steps) }
        var chunk = min(batchSize, max(rows, 1))
        if let b = fixedBatch {
            // Stateful layers: batches of exactly their size, in row order, each carrying its state to the next.
            guard rows % b == 0 else {
                throw KilnRuntimeError("model '\(name)' has stateful layers for batches of exactly \(b) rows, so the inputs' row count must be a multiple of \(b); got \(rows).")
            }
            chunk = b
        }
        try check(fns.reserve(instance, Int64(chunk)))
        let buffers = outElems.map { UnsafeMutableRawPointer.allocate(byteCount: max(4 * $0 * rows, 4), alignment: 64) }
        defer { buffers.forEach { $0.deallocate() } }
        try withRawPointers(prepared) { ins in
            var inPtrs = [UnsafeRawPointer?](repeating: nil, count: ins.count)
            var outPtrs = [UnsafeMutableRawPointer?](repeating: nil, count: buffers.count)
            var done = 0
            while done < rows {
                let n = min(chunk, rows - done)
                for i in ins.indices { inPtrs[i] = ins[i] + 4 * done * prepared[i].rowElements }
                for j in buffers.indices { outPtrs[j] = buffers[j] + 4 * done * outElems[j] }
                try check(fns.predictSteps(instance, inPtrs, outPtrs, Int64(n), Int64(steps)))
                done += n
            }
        }
        return outputs.indices.map { j in
            let shape = [rows] + outputs[j].shape.dropFirst().map { $0 < 0 ? steps : $0 }
            let count = rows * outElems[j]
            switch outputs[j].dtype {
            case .float32:
                return HostTensor(shape: shape, floats: Array(UnsafeBufferPointer(start: buffers[j].assumingMemoryBound(to: Float.self), count: count)))
            case .int32:
                return HostTensor(shape: shape, ints: Array(UnsafeBufferPointer(start: buffers[j].assumingMemoryBound(to: Int32.self), count: count)))
            }
        }
    }

    private func requireTraining() throws {
        guard canTrain else {
            throw KilnRuntimeError("'\(path)' was compiled without a training step, so it cannot be trained or evaluated.")
        }
    }

    /// One optimizer step on one batch (all rows of x and y).
    /// - Returns: the batch loss before the update (NaN or infinite as computed).
    public func trainStep(x: [HostTensor], y: [HostTensor]) throws -> Float {
        try requireTraining()
        let (px, rows) = try prepareAll(x, inputs, role: "input", plural: "inputs")
        let (py, _) = try prepareAll(y, targets, role: "target", plural: "targets", rows: rows)
        return try step(px, py, rows: rows, update: true)
    }

    /// The loss on one batch without an update.
    public func evaluate(x: [HostTensor], y: [HostTensor]) throws -> Float {
        try requireTraining()
        let (px, rows) = try prepareAll(x, inputs, role: "input", plural: "inputs")
        let (py, _) = try prepareAll(y, targets, role: "target", plural: "targets", rows: rows)
        return try step(px, py, rows: rows, update: false)
    }

    /// A train or evaluate step on validated data.
    func step(_ x: [Prepared], _ y: [Prepared], rows: Int, update: Bool) throws -> Float {
        try requireTraining()
        guard rows >= 1 else { throw KilnRuntimeError("a training batch needs at least 1 row (got 0).") }
        var loss: Float = 0
        try withRawPointers(x) { xs in
            try withRawPointers(y) { ys in
                let xp = xs.map { Optional($0) }, yp = ys.map { Optional($0) }
                let steps = try self.steps(x, y)
                try check((update ? fns.trainStepSteps : fns.evaluateSteps)(instance, xp, yp, Int64(rows), Int64(steps), &loss))
            }
        }
        return loss
    }

    // MARK: - Weights and state

    /// The weights in Keras `get_weights()` order.
    public func getWeights() -> [HostTensor] {
        weights.enumerated().map { i, w in
            var a = [Float](repeating: 0, count: w.count)
            let status = a.withUnsafeMutableBufferPointer { fns.getWeight(instance, Int32(i), $0.baseAddress, Int64(w.count)) }
            precondition(status == 0, lastError)
            return HostTensor(shape: w.shape, floats: a)
        }
    }

    /// Replaces every weight; `w` in `get_weights()` order with matching shapes.
    public func setWeights(_ w: [HostTensor]) throws {
        guard w.count == weights.count else {
            throw KilnRuntimeError("model '\(name)' has \(weights.count) weights, but \(w.count) were given.")
        }
        for (i, (t, spec)) in zip(w, weights).enumerated() where t.shape != spec.shape {
            throw KilnRuntimeError("weight \(i) ('\(spec.name)') has shape \(formatShape(spec.shape)), but the array given has shape \(formatShape(t.shape)).")
        }
        for (i, t) in w.enumerated() {
            let values = t.dtype == .float32 ? t.floats : t.ints.map { Float($0) }
            try check(values.withUnsafeBufferPointer { fns.setWeight(instance, Int32(i), $0.baseAddress, Int64(values.count)) })
        }
    }

    /// Saves the whole state (weights, optimizer slots, step count, seed); atomic.
    public func saveWeights(to path: String) throws { try check(fns.saveWeights(instance, path)) }

    /// Loads a file written by ``saveWeights(to:)``; on error nothing changes.
    public func loadWeights(from path: String) throws { try check(fns.loadWeights(instance, path)) }

    /// The seed of the dropout RNG; each step derives its own from it.
    public func setSeed(_ s: UInt64) { fns.setSeed(instance, s) }

    /// Threads this instance's calls use (1 to 64; 0: the default, $KILN_NUM_THREADS or the
    /// online CPUs). Results do not depend on it. Libraries compiled before the thread pool
    /// have no such setting: the call is then ignored.
    public func setNumThreads(_ threads: Int) throws {
        guard let f = fns.setNumThreads else { return }
        guard let t = Int32(exactly: threads) else {
            throw KilnRuntimeError("the number of threads must be 1 to 64, or 0 for the default (got \(threads)).")
        }
        try check(f(instance, t))
    }

    /// Optimizer steps taken so far.
    public var iterations: Int { Int(fns.iterations(instance)) }

    /// Clears the state stateful recurrent layers carry between calls (Keras' reset_states()).
    public func resetStates() throws {
        guard let reset = fns.resetStates else { return }
        try check(reset(instance))
    }

    /// Makes predict calls of up to `rows` rows (and train steps up to that
    /// batch size) run without allocating.
    public func reserve(rows: Int) throws { try check(fns.reserve(instance, Int64(rows))) }
}
