// Issue 12: crafted .keras files (Tests/Fixtures/bounds/, written by
// tools/make_bounds_fixtures.py) that would make a reader obey their declared sizes --
// zip bombs, deep JSON, HDF5 with absurd dimensions, cycles, external links, a damaged
// superblock -- are refused with one sentence before anything large is allocated.
// Also the fuzzers' findings (Tests/Fixtures/fuzz/).
import Foundation
import XCTest
import KilnSupport
import ZIPFoundation
@testable import KilnKeras
import Kiln

private func withMaxBytes<T>(_ value: String, _ body: () throws -> T) rethrows -> T {
    let old = ProcessInfo.processInfo.environment["KILN_MAX_BYTES"]
    setenv("KILN_MAX_BYTES", value, 1)
    defer { if let old = old { setenv("KILN_MAX_BYTES", old, 1) } else { unsetenv("KILN_MAX_BYTES") } }
    return try body()
}

final class BoundsKerasTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func path(_ name: String, _ dir: String = "bounds") -> String {
        Self.fixtures.appendingPathComponent(dir).appendingPathComponent(name).path
    }

    /// The one sentence reading `name` gives (through the file and from memory: the same).
    func refusal(_ name: String, dir: String = "bounds", file: StaticString = #filePath, line: UInt = #line) -> String {
        var messages: [String] = []
        do {
            _ = try KerasArchive.read(path: path(name, dir))
            XCTFail("\(name) was read", file: file, line: line)
        } catch { messages.append("\(error)") }
        do {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name, dir))))
            _ = try KerasArchive.read(data: bytes, name: name)
            XCTFail("\(name) was read from memory", file: file, line: line)
        } catch { messages.append("\(error)") }
        XCTAssertEqual(messages.count, 2, file: file, line: line)
        for m in messages {
            XCTAssertTrue(m.hasPrefix(name + ": "), m, file: file, line: line)
            XCTAssertFalse(m.contains("\n"), "one sentence: \(m)", file: file, line: line)
        }
        XCTAssertEqual(messages.first, messages.last, file: file, line: line)
        return messages.first ?? ""
    }

    func testBaseModelReads() throws {
        let spec = try KerasArchive.read(path: path("dense_ok.keras"))
        XCTAssertEqual(spec.layers.flatMap(\.weights).map(\.shape), [[3, 2], [2]])
    }

    func testConfigDeclaringAnActivationOfExabytesIsRefused() {
        // Input(2^30, 2^30) -> ReLU: no weights to bound it, 4 EiB per sample of activations
        // (the lowering's size arithmetic used to overflow on such shapes: a trap).
        XCTAssertThrowsError(try Compiler.load(path("config_activation_4eib.keras"))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.hasPrefix("huge_relu: its output of shape (None, 1073741824, 1073741824) would take 4.0 EiB per sample, more than Kiln allows ("), m)
            XCTAssertTrue(m.hasSuffix("set KILN_MAX_BYTES to change it)"), m)
        }
    }

    func testConfigSizeBeyond32BitsIsRefused() {
        // units = 2^62: refused naming the key before any shape is computed from it (a stride of
        // 2^62 used to overflow Conv2DTranspose's shape arithmetic, a trap).
        XCTAssertThrowsError(try Compiler.load(path("config_units_2e62.keras"))) { e in
            XCTAssertEqual("\(e)", "config_units_2e62.keras: layer 'dense' (Dense) has units 4611686018427387904; Kiln takes sizes up to 2147483647")
        }
    }

    func testConfigDeclaringGigabytesIsRefused() {
        let m = refusal("zip_config_declares_3gib.keras")
        XCTAssertTrue(m.contains("config.json declares 3221225472 bytes, more than Kiln reads for it ("), m)
        XCTAssertTrue(m.contains("set KILN_MAX_BYTES to change it"), m)
    }

    func testImpossibleCompressionRatioIsRefused() {
        // With a limit high enough that the declared 4000 MiB would be allowed: the ratio refuses it.
        let m = withMaxBytes("64G") { refusal("zip_weights_ratio_lie.keras") }
        XCTAssertTrue(m.contains("model.weights.h5 declares 4194304000 bytes stored in"), m)
        XCTAssertTrue(m.contains("a ratio no real archive has (a zip bomb or a damaged archive)"), m)
        // Under the default limit, refused too (by the ratio or by the limit).
        XCTAssertTrue(refusal("zip_weights_ratio_lie.keras").contains("model.weights.h5 declares 4194304000 bytes"))
    }

    func testEntryInflatingPastItsDeclaredSizeIsStopped() {
        let m = refusal("zip_weights_inflates_past_declared.keras")
        XCTAssertEqual(m, "zip_weights_inflates_past_declared.keras: model.weights.h5 is larger than the zip directory says.")
    }

    func testEntriesOverTheLimitAreRefused() {
        // model.weights.h5 may take half the limit (libhdf5 copies it once more).
        let m = withMaxBytes("1G") { refusal("zip_weights_ratio_lie.keras") }
        XCTAssertEqual(m, "zip_weights_ratio_lie.keras: model.weights.h5 declares 4194304000 bytes, more than Kiln reads for it (512.0 MiB; the limit is 1.0 GiB; set KILN_MAX_BYTES to change it).")
        // config.json a 32nd of it (parsed JSON takes tens of bytes per element).
        let c = withMaxBytes("4K") { refusal("dense_ok.keras") }
        XCTAssertTrue(c.hasPrefix("dense_ok.keras: config.json declares "), c)
        XCTAssertTrue(c.hasSuffix(" bytes, more than Kiln reads for it (128 bytes; the limit is 4.0 KiB; set KILN_MAX_BYTES to change it)."), c)
    }

    func testDeeplyNestedJSONIsRefused() {
        let m = refusal("json_nested_10000.keras")
        XCTAssertTrue(m.contains("config.json is not valid JSON (") && m.contains("nesting deeper than 200 levels"), m)
        // The parser itself, at the limit and one past it.
        XCTAssertNoThrow(try JSON.parse(String(repeating: "[", count: 200) + String(repeating: "]", count: 200)))
        XCTAssertThrowsError(try JSON.parse(String(repeating: "[", count: 201) + String(repeating: "]", count: 201)))
    }

    func testAbsurdDatasetDimensionsAreRefused() {
        let m = refusal("h5_absurd_dims.keras")
        XCTAssertEqual(m, "h5_absurd_dims.keras: model.weights.h5 has a dataset 'layers/dense/vars/0' that is too large (layer 'dense').")
    }

    /// dense_ok.keras' model.weights.h5.
    func weightsImage() throws -> [UInt8] {
        let archive = try Archive(url: URL(fileURLWithPath: path("dense_ok.keras")), accessMode: .read)
        return try KerasArchive.entryBytes(archive, "model.weights.h5", display: "dense_ok.keras")
    }

    func testDatasetsOverTheLimitAreRefusedBeforeReading() throws {
        let h5 = try HDF5File(image: try weightsImage())
        // The kernel is 6 float32s (24 bytes), the bias 2 (8 bytes): 32 bytes together.
        XCTAssertEqual(try withMaxBytes("32") { try h5.readFloats("layers/dense/vars/0") }.values.count, 6)
        XCTAssertEqual(try withMaxBytes("32") { try h5.readFloats("layers/dense/vars/1") }.values.count, 2)
        // Counted over the whole file: one more read is over the limit.
        do {
            _ = try withMaxBytes("32") { try h5.readFloats("layers/dense/vars/1") }
            XCTFail("read past the limit")
        } catch let f as HDF5Failure {
            XCTAssertEqual(f.message, "has a dataset 'layers/dense/vars/1' of shape [2] that would bring the weights read to 40 bytes, more than Kiln allows (the limit is 32 bytes; set KILN_MAX_BYTES to change it)")
        }
        let fresh = try HDF5File(image: try weightsImage())
        XCTAssertThrowsError(try withMaxBytes("23") { try fresh.readFloats("layers/dense/vars/0") })
    }

    func testCycleOfHardLinksIsRefused() {
        let m = refusal("h5_cycle.keras")
        XCTAssertEqual(m, "h5_cycle.keras: model.weights.h5 links the group 'layers/dense/loop' to a group reached before (a cycle of links), which Keras never writes.")
    }

    func testExternalLinkIsNotFollowed() {
        let m = refusal("h5_external_link.keras")
        XCTAssertEqual(m, "h5_external_link.keras: model.weights.h5 has no dataset 'layers/dense/vars/1' (layer 'dense').")
    }

    func testTruncatedHDF5IsRefusedBeforeLibhdf5() {
        let m = refusal("h5_truncated.keras")
        XCTAssertTrue(m.hasPrefix("h5_truncated.keras: model.weights.h5 is truncated: its superblock declares "), m)
        XCTAssertTrue(m.hasSuffix(" bytes but it has \(((try? weightsImage())?.count ?? 0) / 2)."), m)
    }

    func testUnknownSuperblockVersionIsRefused() {
        XCTAssertEqual(refusal("h5_superblock_version.keras"),
                       "h5_superblock_version.keras: model.weights.h5 has an HDF5 superblock of version 9, which Kiln does not read.")
    }

    func testHistoryOverTheLimitIsRefused() throws {
        let text = Array(#"{"loss": [0.5, 0.25, 0.125, 0.0625]}"#.utf8)  // 36 bytes
        XCTAssertEqual(try withMaxBytes("2K") { try LossPlot.readHistory(text, name: "h.json") }, [0.5, 0.25, 0.125, 0.0625])
        do {
            _ = try withMaxBytes("1K") { try LossPlot.readHistory(text, name: "h.json") }  // 1K / 32 = 32 bytes of JSON
            XCTFail("read a history over the limit")
        } catch let e as LossPlot.PlotError {
            XCTAssertEqual(e.description, "h.json is 36 bytes, larger than a history file Kiln reads (32 bytes; the limit is 1.0 KiB; set KILN_MAX_BYTES to change it)")
        }
        let deep = Array(("{\"loss\": " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "}").utf8)
        XCTAssertThrowsError(try LossPlot.readHistory(deep, name: "deep.json"))
    }

    /// libhdf5 runs in the caller's process only after the same reading ran in a child: a
    /// child that crashes or hangs refuses the file, and this process goes on.
    func testLibhdf5CrashOrHangInTheChildRefusesTheFile() {
        defer { HDF5Lib.childHook = nil; HDF5Lib.preflightSeconds = 30 }
        // A real fault, as a libhdf5 bug makes (a raised SIGSEGV is caught by the Swift runtime).
        HDF5Lib.childHook = { UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = 1 }
        XCTAssertEqual(refusal("dense_ok.keras"),
                       "dense_ok.keras: model.weights.h5 is damaged: libhdf5 crashed reading it (signal 11, in a separate process).")
        HDF5Lib.childHook = { _exit(1) }
        XCTAssertEqual(refusal("dense_ok.keras"),
                       "dense_ok.keras: model.weights.h5 is damaged: libhdf5 failed reading it (exit status 1, in a separate process).")
        HDF5Lib.childHook = { while true { sleep(1) } }
        HDF5Lib.preflightSeconds = 1
        XCTAssertEqual(refusal("dense_ok.keras"),
                       "dense_ok.keras: model.weights.h5 makes libhdf5 run for more than 1 seconds (a damaged or crafted file).")
        HDF5Lib.childHook = nil
        XCTAssertNoThrow(try KerasArchive.read(path: path("dense_ok.keras")))
    }

    /// The child's address space is capped at the limit (plus twice the image): a child that
    /// allocates past it refuses the file, and this process never runs the same reading.
    func testChildAllocatingPastTheLimitRefusesTheFile() {
        defer { HDF5Lib.childHook = nil }
        HDF5Lib.childHook = {
            // Touched 1 MiB blocks until malloc fails at the cap (kept in C memory: a Swift
            // array could not grow there).
            let slots = malloc(8 << 16)!.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
            for i in 0..<(1 << 16) {
                guard let p = malloc(1 << 20) else { break }
                memset(p, 1, 1 << 20)
                slots[i] = p
            }
        }
        withMaxBytes("64M") {
            // 64 MiB plus twice the small image.
            let m = refusal("dense_ok.keras")
            XCTAssertTrue(m.hasPrefix("dense_ok.keras: model.weights.h5 makes libhdf5 allocate more than 64.0 MiB (a damaged or crafted file; "), m)
            XCTAssertTrue(m.hasSuffix("the limit is 64.0 MiB; set KILN_MAX_BYTES to change it)."), m)
        }
        XCTAssertEqual(HDF5Lib.memoryBudget(bytes: 1000), KilnLimits.maxBytes + 2000)
        XCTAssertEqual(HDF5Lib.memoryBudget(bytes: Int.max), Int.max / 4)
    }

    /// A 2 KB file whose kernel of six values sits in one deflated chunk of 256 MiB: libhdf5
    /// inflates the whole chunk into a buffer it doubles. Under a limit of 100 MiB the child's
    /// cap refuses the doubling to 140 MiB while its peak (70 MiB) is still under the budget,
    /// and libhdf5 reports the failed allocation as an error. That error refuses the file;
    /// before, the child exited normally and this process, which has no cap, inflated all
    /// 256 MiB. Under a larger limit the file reads.
    func testDeflatedChunkInflatingPastTheLimitIsRefused() {
        withMaxBytes("100M") {
            let m = refusal("h5_deflated_chunk_256mib.keras")
            XCTAssertEqual(m, "h5_deflated_chunk_256mib.keras: model.weights.h5 makes libhdf5 allocate more than 100.5 MiB (a damaged or crafted file; the limit is 100.0 MiB; set KILN_MAX_BYTES to change it).")
        }
        withMaxBytes("2G") {
            XCTAssertEqual((try? KerasArchive.read(path: path("h5_deflated_chunk_256mib.keras")))?.layers.last?.weights.first?.shape, [3, 2])
        }
    }

    /// A Fuzz/keras input of the split form (Fuzz/keras/fuzz_keras.swift) from Tests/Fixtures/fuzz:
    /// [4-byte little-endian length N][N bytes of config.json][model.weights.h5].
    func splitInput(_ name: String) throws -> (config: [UInt8], weights: [UInt8]) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name, "fuzz"))))
        let n = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        let split = min(4 + n, bytes.count)
        return (Array(bytes[4..<split]), Array(bytes[split...]))
    }

    /// Fuzz/keras found: a 24 KB model.weights.h5 whose damaged object headers make libhdf5
    /// allocate without end (13 GB in 30 s, then killed; h5py's libhdf5 1.14 fails the same
    /// way). With the cap, the child stops at the limit and the file is refused.
    func testFuzzFoundLibhdf5AllocatingWithoutEnd() throws {
        let (config, weights) = try splitInput("keras_libhdf5_allocates_without_end.split")
        try withMaxBytes("256M") {
            XCTAssertThrowsError(try KerasArchive.read(config: config, weights: { weights }, display: "f.keras")) { e in
                XCTAssertTrue("\(e)".hasPrefix("f.keras: model.weights.h5 makes libhdf5 allocate more than 256.0 MiB (a damaged or crafted file; the limit is 256.0 MiB"), "\(e)")
            }
        }
    }

    /// Fuzz/keras found (in the split form of Fuzz/keras/fuzz_keras.swift): a heap overflow in
    /// libhdf5 1.10.8 (H5G__node_by_idx, strdup of a symbol-table name) while Kiln listed a
    /// group. Under AddressSanitizer the child dies and the file is refused; without it the
    /// overflow may go unnoticed, but whatever happens, it happens in the child first.
    func testFuzzFoundLibhdf5SymbolTableOverflow() throws {
        let (config, weights) = try splitInput("keras_libhdf5_symbol_table_overflow.split")
        do {
            _ = try KerasArchive.read(config: config, weights: { weights }, display: "f.keras")
            XCTFail("the crafted file was read")
        } catch let e as KerasImportError {
            XCTAssertTrue(e.description.hasPrefix("f.keras: "), e.description)
        }
    }

    /// Fuzz/keras found: ZIPFoundation's in-memory archive trapped (a range with lowerBound >
    /// upperBound) on an entry whose offset lies past the end of the data.
    func testFuzzFoundZipOffsetPastTheEnd() {
        let m = refusal("keras_memory_zip_seek_past_end.keras", dir: "fuzz")
        XCTAssertFalse(m.isEmpty)
    }
}
