// Issue 12: .npy files whose headers lie about their size, or whose declared sizes need more
// memory than KILN_MAX_BYTES allows, are refused with one sentence before anything large
// is allocated; KilnLimits' parsing of KILN_MAX_BYTES.
import Foundation
import XCTest
import KilnSupport
@testable import KilnRuntime

/// Runs `body` with KILN_MAX_BYTES set to `value` (restored after).
func withMaxBytes<T>(_ value: String, _ body: () throws -> T) rethrows -> T {
    let old = ProcessInfo.processInfo.environment["KILN_MAX_BYTES"]
    setenv("KILN_MAX_BYTES", value, 1)
    defer { if let old = old { setenv("KILN_MAX_BYTES", old, 1) } else { unsetenv("KILN_MAX_BYTES") } }
    return try body()
}

final class BoundsNPYTests: XCTestCase {
    /// A version 1.0 .npy image with the given header dictionary and data bytes.
    func npy(_ dict: String, _ data: [UInt8]) -> [UInt8] {
        var h = Array(dict.utf8)
        while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
        h.append(0x0A)
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(h.count & 0xff), UInt8(h.count >> 8)] + h + data
    }

    func refusal(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let t = try NPY.read(data: bytes, name: "lie.npy")
            XCTFail("read an array of shape \(t.shape)", file: file, line: line)
            return ""
        } catch let e as NPYError {
            XCTAssertTrue(e.description.hasPrefix("lie.npy: "), e.description, file: file, line: line)
            XCTAssertFalse(e.description.dropLast().contains("\n"), "one sentence: \(e.description)", file: file, line: line)
            return e.description
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return ""
        }
    }

    func testMoreBytesThanDeclaredIsRefused() {
        let m = refusal(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", [UInt8](repeating: 0, count: 12)))
        XCTAssertTrue(m.contains("needs 8 bytes of data but the file has 12 (4 bytes more than its header declares)"), m)
    }

    func testFewerBytesThanDeclaredIsRefused() {
        let m = refusal(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", [UInt8](repeating: 0, count: 8)))
        XCTAssertTrue(m.contains("truncated .npy file: shape (3) of <f4 needs 12 bytes of data but the file has 8"), m)
    }

    func testAbsurdShapeIsRefusedWithoutAllocating() {
        // 2^40 float32s declared, 16 bytes present: refused from the header alone.
        let m = refusal(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", [UInt8](repeating: 0, count: 16)))
        XCTAssertTrue(m.contains("needs 4398046511104 bytes of data but the file has 16"), m)
        let o = refusal(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", []))
        XCTAssertTrue(o.contains("the shape has too many elements"), o)
    }

    func testArrayOverTheLimitIsRefused() throws {
        // 1000 int8 values: a 1000-byte file whose int32 array takes 4000 bytes.
        let bytes = npy("{'descr': '|i1', 'fortran_order': False, 'shape': (1000,), }", [UInt8](repeating: 1, count: 1000))
        XCTAssertEqual(try withMaxBytes("4000") { try NPY.read(data: bytes, name: "ok.npy") }.count, 1000)
        let m = withMaxBytes("3999") { refusal(bytes) }
        XCTAssertTrue(m.contains("would need 3.9 KiB in memory, more than Kiln allows (the limit is 3.9 KiB; set KILN_MAX_BYTES to change it)"), m)
    }

    func testFileOverTheLimitIsRefusedBeforeReading() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bounds-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.npy").path
        try NPY.write(HostTensor(shape: [64], floats: [Float](repeating: 1, count: 64)), path: path)
        do {
            _ = try withMaxBytes("1K") { try NPY.read(path: path) }
        } catch { XCTFail("\(error)") }
        do {
            _ = try withMaxBytes("100") { try NPY.read(path: path) }
            XCTFail("read a file over the limit")
        } catch let e as NPYError {
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber
            XCTAssertEqual(e.description, "\(path): the file is \(KilnLimits.describe(size.intValue)), more than Kiln reads (the limit is 100 bytes; set KILN_MAX_BYTES to change it).")
        }
    }

    func testMaxBytesParsing() {
        XCTAssertEqual(KilnLimits.parseSize("123"), 123)
        XCTAssertEqual(KilnLimits.parseSize("64K"), 64 << 10)
        XCTAssertEqual(KilnLimits.parseSize("512m"), 512 << 20)
        XCTAssertEqual(KilnLimits.parseSize(" 2G "), 2 << 30)
        XCTAssertEqual(KilnLimits.parseSize("1T"), 1 << 40)
        for bad in ["", "0", "-5", "G", "1.5G", "12Q", "99999999999999999999", "9000000000000T"] {
            XCTAssertNil(KilnLimits.parseSize(bad), bad)
        }
        XCTAssertEqual(withMaxBytes("3M") { KilnLimits.maxBytes }, 3 << 20)
        XCTAssertEqual(withMaxBytes("nonsense") { KilnLimits.maxBytes }, KilnLimits.defaultMaxBytes)
        XCTAssertGreaterThanOrEqual(KilnLimits.defaultMaxBytes, 1 << 30)
    }
}
