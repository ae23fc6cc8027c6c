// What every test target shares: running a program with both of its pipes
// drained, and comparing arrays of numbers within a tolerance.

import Foundation
import XCTest

/// How a finished program ended and what it printed.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `exe` (a path, or a program looked up on PATH when it has no slash) to completion
/// with no input. Both pipes are read at once, stderr on a second thread, so a child that
/// fills one of them while the other is read cannot block.
public func runProcess(_ exe: String, _ args: [String]) throws -> ProcessResult {
    let p = Process()
    if exe.contains("/") {
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
    } else {
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [exe] + args
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let errText = Box()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { errText.data = err.fileHandleForReading.readDataToEndOfFile() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errText.data, as: UTF8.self))
}

/// numpy.allclose per element: |got - want| <= atol + rtol * |want|, and a NaN only where a NaN
/// is expected. Reports how many differ and the first.
public func assertClose(_ got: [Double], _ want: [Double], rtol: Double = 1e-9, atol: Double = 1e-12, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    guard got.count == want.count else {
        XCTFail("\(what): \(got.count) values, expected \(want.count)", file: file, line: line)
        return
    }
    var bad = 0
    var first = ""
    for i in got.indices {
        let (g, w) = (got[i], want[i])
        let ok = (g.isNaN && w.isNaN) || g == w || abs(g - w) <= atol + rtol * abs(w)
        if !ok {
            if bad == 0 { first = "element \(i): got \(g), expected \(w)" }
            bad += 1
        }
    }
    if bad > 0 { XCTFail("\(what): \(bad) of \(got.count) values differ; first at \(first)", file: file, line: line) }
}

/// float32 results against a (float64) reference.
public func assertClose(_ got: [Float], _ want: [Double], rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    assertClose(got.map(Double.init), want, rtol: rtol, atol: atol, what, file: file, line: line)
}

/// float32 results against float32 expectations (Keras dumps).
public func assertClose(_ got: [Float], _ want: [Float], rtol: Double, atol: Double, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    assertClose(got.map(Double.init), want.map(Double.init), rtol: rtol, atol: atol, what, file: file, line: line)
}

/// Files the test targets share, in Tests/Fixtures.
public enum Fixtures {
    public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    /// The hand-written stand-in for a compiled model's object (see its header comment).
    public static var fakeModelC: String { directory + "/fake_model.c" }
}
