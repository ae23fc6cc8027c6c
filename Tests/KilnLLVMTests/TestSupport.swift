// Shared helpers of KernelTests, TrainingTests and ImporterErrorTests:
// building layer-level models by hand, compiling and loading them,
// deterministic data, and numpy-style closeness checks.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnRuntime
@_exported import KilnTestSupport

/// The package root (…/Tests/KilnLLVMTests/TestSupport.swift → …).
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh directory removed when the test ends.
func makeTempDir(_ test: XCTestCase, _ tag: String = "kt") throws -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(tag)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
    return d
}

/// Builds a layer-level Graph by hand.
struct GraphMaker {
    var g: Graph
    init(_ name: String) { g = Graph(name: name) }

    mutating func input(_ name: String, _ dims: [Int], dtype: DType = .f32) -> Value {
        g.addInput(name, TensorType(dtype, [.n] + dims.map { .fixed($0) }))
    }
    mutating func param(_ name: String, _ dims: [Int], _ values: [Float], trainable: Bool = true) -> Value {
        g.addParam(name, .f32(dims.map { .fixed($0) }), initial: values, trainable: trainable)
    }
    mutating func layer(_ op: LayerOp, _ inputs: [Value], _ name: String) throws -> Value {
        try g.add(.layer(op), inputs, layer: name)[0]
    }
    mutating func output(_ v: Value, _ name: String) { g.addOutput(v, name: name) }

    func model(training: TrainingConfig? = nil) -> Model {
        Model(graph: g, layers: [], training: training, isSequential: false)
    }
}

/// Compiles a model into dir and loads it.
func compileAndLoad(_ model: Model, name: String, dir: String, options: CompileOptions = CompileOptions()) throws -> CompiledLibrary {
    let a = try Compiler.compile(model, name: name, to: dir, options: options, log: { _ in })
    return try CompiledLibrary(path: a.library)
}

/// Deterministic test data from Kiln's splitmix64 (KilnSupport).
struct TestRNG {
    var source: SplitMix64
    init(_ seed: UInt64) { source = SplitMix64(state: seed) }
    mutating func next() -> UInt64 { source.next() }
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(Double(next() >> 11) / Double(1 << 53))
    }
    mutating func floats(_ count: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(lo, hi) }
    }
    /// Multiples of 1/denominator in [-maxNumerator, maxNumerator]/denominator:
    /// sums of a few products of them are exact in float32, so linear kernels
    /// can be compared without rounding noise.
    mutating func dyadic(_ count: Int, denominator: Float = 8, maxNumerator: Int = 8) -> [Float] {
        (0..<count).map { _ in Float(Int(next() % UInt64(2 * maxNumerator + 1)) - maxNumerator) / denominator }
    }
    mutating func int(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

func assertClose(_ got: HostTensor, _ want: [Double], shape: [Int], rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.shape, shape, "\(what): shape", file: file, line: line)
    assertClose(got.floats, want, rtol: rtol, atol: atol, what, file: file, line: line)
}

/// The message of an error, whichever type it is.
func message(_ e: Error) -> String { String(describing: e) }

/// Asserts `body` throws an error whose message contains every part.
func assertThrows(_ parts: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("\(what): expected an error", file: file, line: line)
    } catch {
        let m = message(error)
        for p in parts where !m.contains(p) {
            XCTFail("\(what): error '\(m)' does not contain '\(p)'", file: file, line: line)
        }
    }
}

/// The bit patterns of floats (for exact comparisons that treat NaN sanely).
func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }
func bits(_ ts: [HostTensor]) -> [[UInt32]] { ts.map { bits($0.floats) } }

/// The most recently built `kiln` among the package's build directories (skips the test if none).
func kilnBinary() throws -> String {
    // The kiln built with these tests: beside the test bundle, in the same build folder
    // (`swift build --build-tests` builds both). Missing means a broken build: fail, never skip.
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [bundle, bundle.deletingLastPathComponent()] {
        let p = dir.appendingPathComponent("kiln").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    throw TestSupportError("no kiln binary beside the test bundle in \(bundle.path); build it with `swift build --build-tests`")
}

struct TestSupportError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs a program and returns its exit status and output.
func runProgram(_ exe: String, _ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let r = try runProcess(exe, args)
    return (r.status, r.stdout, r.stderr)
}
