import Foundation
import XCTest
@testable import KilnRuntime

final class NPYTests: XCTestCase {
    static let casesDir: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("conformance/cases")

    /// A hand-built .npy image.
    func npy(major: UInt8 = 1, _ header: String, _ data: [UInt8], padTo64: Bool = true) -> [UInt8] {
        var h = Array(header.utf8)
        let prefix = major == 1 ? 10 : 12
        if padTo64 {
            while (prefix + h.count + 1) % 64 != 0 { h.append(0x20) }
        }
        h.append(0x0A)
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0]
        if major == 1 {
            out += [UInt8(h.count & 0xff), UInt8(h.count >> 8)]
        } else {
            out += [UInt8(h.count & 0xff), UInt8((h.count >> 8) & 0xff), UInt8((h.count >> 16) & 0xff), UInt8(h.count >> 24)]
        }
        return out + h + data
    }

    func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }
    func be<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    }

    func expectError(_ bytes: [UInt8], name: String = "t.npy", contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try NPY.read(data: bytes, name: name)
            XCTFail("expected an error", file: file, line: line)
        } catch let e as NPYError {
            XCTAssertTrue(e.description.hasPrefix(name + ":"), e.description, file: file, line: line)
            for p in parts {
                XCTAssertTrue(e.description.contains(p), "'\(e.description)' lacks '\(p)'", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-npy-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    // MARK: Writing

    func testEncodeMatchesNumpyLayout() {
        let t = HostTensor(shape: [2, 3], floats: [0, 0, 0, 0, 0, 0])
        let bytes = NPY.encode(t)
        XCTAssertEqual(bytes.count, 152)  // numpy: np.save(np.zeros((2,3), np.float32))
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        XCTAssertEqual(Array(bytes[0..<10]), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 0x76, 0])
        XCTAssertEqual(Array(bytes[10..<(10 + header.utf8.count)]), Array(header.utf8))
        XCTAssertEqual(bytes[127], 0x0A)
        XCTAssertEqual(bytes[126], 0x20)
        let scalar = NPY.encode(HostTensor(shape: [], floats: [1.5]))
        XCTAssertTrue(String(decoding: scalar[10..<128], as: UTF8.self).hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (), }"))
        let vec = NPY.encode(HostTensor(shape: [3], ints: [1, 2, 3]))
        XCTAssertTrue(String(decoding: vec[10..<128], as: UTF8.self).hasPrefix("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"))
        XCTAssertEqual(vec.count % 4, 0)
        XCTAssertEqual((vec.count - 12) % 64, 0)
    }

    func testRoundTrip() throws {
        let d = try tempDir()
        let tensors = [
            HostTensor(shape: [2, 3], floats: [1, -2.5, .infinity, 0, -0.0, Float(bitPattern: 1)]),
            HostTensor(shape: [4], ints: [0, -1, Int32.max, Int32.min]),
            HostTensor(shape: [], floats: [3.25]),
            HostTensor(shape: [0, 5], floats: []),
            HostTensor(shape: [2, 1, 2], ints: [1, 2, 3, 4]),
        ]
        for (i, t) in tensors.enumerated() {
            let p = d.appendingPathComponent("t\(i).npy").path
            try NPY.write(t, path: p)
            let back = try NPY.read(path: p)
            XCTAssertEqual(back, t)
            XCTAssertEqual(try NPY.read(data: NPY.encode(t), name: "mem"), t)
        }
        // Overwriting works and no temporary file is left behind.
        try NPY.write(tensors[1], path: d.appendingPathComponent("t0.npy").path)
        XCTAssertEqual(try NPY.read(path: d.appendingPathComponent("t0.npy").path), tensors[1])
        let names = try FileManager.default.contentsOfDirectory(atPath: d.path).sorted()
        XCTAssertEqual(names, (0..<tensors.count).map { "t\($0).npy" })
        // NaN survives (not Equatable, check separately).
        let p = d.appendingPathComponent("nan.npy").path
        try NPY.write(HostTensor(shape: [1], floats: [.nan]), path: p)
        XCTAssertTrue(try NPY.read(path: p).floats[0].isNaN)
    }

    func testWriteIntoMissingDirectoryFails() {
        XCTAssertThrowsError(try NPY.write(HostTensor(shape: [1], floats: [1]), path: "/nonexistent-dir-kiln/x.npy")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent-dir-kiln/x.npy"))
        }
    }

    // MARK: Header versions and layouts

    func testVersions() throws {
        let data = le([Float(1).bitPattern, Float(2).bitPattern, Float(3).bitPattern])
        for major: UInt8 in [1, 2, 3] {
            let t = try NPY.read(data: npy(major: major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", data), name: "v\(major)")
            XCTAssertEqual(t.shape, [3])
            XCTAssertEqual(t.floats, [1, 2, 3])
        }
        // Version 3 allows UTF-8 in the header; odd spacing, double quotes,
        // key order and an unpadded header are accepted too.
        let t = try NPY.read(data: npy(major: 3, "{\"shape\":(1,3),\"fortran_order\":False,\"descr\":\"<f4\", 'é': 'ü'}", data, padTo64: false), name: "v3")
        XCTAssertEqual(t.shape, [1, 3])
        expectError(npy(major: 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", data), contains: ["version 4.0"])
    }

    func testScalarAndEmpty() throws {
        let s = try NPY.read(data: npy("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", le([Int64(-7)])), name: "s")
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.ints, [-7])
        let e = try NPY.read(data: npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", []), name: "e")
        XCTAssertEqual(e.shape, [0, 3])
        XCTAssertEqual(e.floats, [])
    }

    func testFortranOrder() throws {
        // [[0, 1, 2], [3, 4, 5]] stored column by column.
        let t = try NPY.read(data: npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", le([Int32(0), 3, 1, 4, 2, 5])), name: "f")
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.ints, [0, 1, 2, 3, 4, 5])
        // Rank 3: element (i, j, k) = 100i + 10j + k, shape (2, 3, 4).
        var fortran: [Int32] = []
        for k in 0..<4 { for j in 0..<3 { for i in 0..<2 { fortran.append(Int32(100 * i + 10 * j + k)) } } }
        let t3 = try NPY.read(data: npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }", le(fortran)), name: "f3")
        var want: [Int32] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { want.append(Int32(100 * i + 10 * j + k)) } } }
        XCTAssertEqual(t3.ints, want)
        // Fortran order of a vector is the same as C order.
        let v = try NPY.read(data: npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", le([Float(1).bitPattern, Float(2).bitPattern])), name: "fv")
        XCTAssertEqual(v.floats, [1, 2])
    }

    // MARK: Dtypes

    func testBigEndianFloat64() throws {
        let values: [Double] = [0.1, 1e-50, 3.4e39, -2.5]
        let t = try NPY.read(data: npy("{'descr': '>f8', 'fortran_order': False, 'shape': (4,), }", be(values.map(\.bitPattern))), name: "be")
        XCTAssertEqual(t.dtype, .float32)
        // numpy: .astype(np.float32).view(np.uint32)
        XCTAssertEqual(t.floats.map(\.bitPattern), [1036831949, 0, 2139095040, 3223322624])
        let le8 = try NPY.read(data: npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", le([Double(1.25).bitPattern, Double(-3).bitPattern])), name: "le")
        XCTAssertEqual(le8.floats, [1.25, -3])
        let be4 = try NPY.read(data: npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", be([Float(6.5).bitPattern])), name: "be4")
        XCTAssertEqual(be4.floats, [6.5])
    }

    func testFloat16() throws {
        let bits: [UInt16] = [0x0001, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x3c00, 0xc000, 0x7bff, 0x8001, 0x7e00, 0x0000, 0x8000]
        let t = try NPY.read(data: npy("{'descr': '<f2', 'fortran_order': False, 'shape': (12,), }", le(bits)), name: "h")
        let want: [Float] = [5.960464477539063e-08, 6.097555160522461e-05, 6.103515625e-05, .infinity, -.infinity,
                             1.0, -2.0, 65504.0, -5.960464477539063e-08]
        XCTAssertEqual(Array(t.floats[0..<9]), want)
        XCTAssertTrue(t.floats[9].isNaN)
        XCTAssertEqual(t.floats[10].bitPattern, 0)
        XCTAssertEqual(t.floats[11].bitPattern, 0x8000_0000)
        let b = try NPY.read(data: npy("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }", be([UInt16(0x3555)])), name: "hb")
        XCTAssertEqual(b.floats, [0.333251953125])
    }

    func testBool() throws {
        let t = try NPY.read(data: npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }", [1, 0, 0, 1]), name: "b")
        XCTAssertEqual(t.dtype, .int32)
        XCTAssertEqual(t.ints, [1, 0, 0, 1])
        let q = try NPY.read(data: npy("{'descr': '?', 'fortran_order': False, 'shape': (1,), }", [1]), name: "q")
        XCTAssertEqual(q.ints, [1])
    }

    func testIntegers() throws {
        let i8 = try NPY.read(data: npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", le([Int64(-5), 2147483647, -2147483648])), name: "i8")
        XCTAssertEqual(i8.ints, [-5, Int32.max, Int32.min])
        let bi8 = try NPY.read(data: npy("{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }", be([Int64(-5), 7])), name: "bi8")
        XCTAssertEqual(bi8.ints, [-5, 7])
        let i1 = try NPY.read(data: npy("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", [0xFF, 0x7F]), name: "i1")
        XCTAssertEqual(i1.ints, [-1, 127])
        let u1 = try NPY.read(data: npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", [0xFF, 0x7F]), name: "u1")
        XCTAssertEqual(u1.ints, [255, 127])
        let i2 = try NPY.read(data: npy("{'descr': '>i2', 'fortran_order': False, 'shape': (1,), }", be([Int16(-300)])), name: "i2")
        XCTAssertEqual(i2.ints, [-300])
        let u2 = try NPY.read(data: npy("{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }", le([UInt16(65535)])), name: "u2")
        XCTAssertEqual(u2.ints, [65535])
        let u4 = try NPY.read(data: npy("{'descr': '=u4', 'fortran_order': False, 'shape': (1,), }", le([UInt32(123456)])), name: "u4")
        XCTAssertEqual(u4.ints, [123456])
        let u8 = try NPY.read(data: npy("{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", le([UInt64(9)])), name: "u8")
        XCTAssertEqual(u8.ints, [9])
    }

    func testInt64OverflowIsAnError() {
        expectError(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", le([Int64(1), 3_000_000_000])),
                    name: "labels.npy", contains: ["3000000000", "does not fit in int32"])
        expectError(npy("{'descr': '<u4', 'fortran_order': False, 'shape': (1,), }", le([UInt32.max])),
                    name: "u.npy", contains: ["4294967295", "int32"])
    }

    // MARK: Errors

    func testTruncated() {
        let full = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", le([UInt32](repeating: 0, count: 6)))
        expectError(Array(full.dropLast(4)), name: "x.npy", contains: ["truncated", "24 bytes", "has 20"])
        expectError(Array(full.prefix(40)), name: "x.npy", contains: ["truncated", "header"])
        expectError(Array(full.prefix(8)), name: "x.npy", contains: ["truncated"])
    }

    func testBadMagic() {
        expectError(Array("PK\u{3}\u{4} hello world, this is not numpy".utf8), name: "zip.npy", contains: ["not an .npy file"])
        expectError([], name: "empty.npy", contains: ["not an .npy file"])
    }

    func testUnsupportedDtypes() {
        for (descr, word) in [("<c8", "complex"), ("|O", "objects"), ("<U3", "strings"), ("|S4", "strings"), ("<f16", "float"), ("<M8[ns]", "dates")] {
            expectError(npy("{'descr': '\(descr)', 'fortran_order': False, 'shape': (1,), }", [UInt8](repeating: 0, count: 16)),
                        contains: ["unsupported dtype '\(descr)'", word])
        }
        expectError(npy("{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", [UInt8](repeating: 0, count: 8)),
                    contains: ["unsupported dtype", "structured"])
    }

    func testMalformedHeaders() {
        let bad = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) ",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "['descr']",
            "{'descr': '<f4', 'fortran_order': maybe, 'shape': (1,), }",
        ]
        for h in bad {
            expectError(npy(h, [0, 0, 0, 0]), name: "m.npy", contains: ["malformed .npy header"])
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try NPY.read(path: "/nonexistent/kiln/x.npy")) { e in
            XCTAssertEqual("\(e)", "/nonexistent/kiln/x.npy: no such file.")
        }
    }

    // MARK: Real files

    func testConformanceFiles() throws {
        let x = try NPY.read(path: Self.casesDir.appendingPathComponent("dense_linear/x0.npy").path)
        XCTAssertEqual(x.shape, [10, 4])
        XCTAssertEqual(x.dtype, .float32)
        XCTAssertEqual(x.floats[0], 0.02968429, accuracy: 1e-7)
        let tokens = try NPY.read(path: Self.casesDir.appendingPathComponent("functional_mask_zero_lstm/x0.npy").path)
        XCTAssertEqual(tokens.shape, [8, 7])
        XCTAssertEqual(tokens.dtype, .int32)
        XCTAssertEqual(Array(tokens.ints.prefix(3)), [8, 1, 11])
        let img = try NPY.read(path: Self.casesDir.appendingPathComponent("conv2d_strides/x0.npy").path)
        XCTAssertEqual(img.shape, [8, 9, 8, 2])
        // Every .npy file of the corpus reads, and re-encodes to the same bytes
        // when it is a plain '<f4' / '<i4' file written by numpy.
        let cases = try FileManager.default.contentsOfDirectory(atPath: Self.casesDir.path)
        var n = 0
        for c in cases {
            let dir = Self.casesDir.appendingPathComponent(c)
            guard let e = FileManager.default.enumerator(atPath: dir.path) else { continue }
            for case let f as String in e where f.hasSuffix(".npy") {
                let path = dir.appendingPathComponent(f).path
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                let t = try NPY.read(data: bytes, name: path)
                let head = String(decoding: bytes.prefix(64), as: UTF8.self)
                if head.contains("'<f4'") || head.contains("'<i4'") { XCTAssertEqual(NPY.encode(t), bytes, path) }
                n += 1
            }
        }
        XCTAssertGreaterThan(n, 300)
    }
}
