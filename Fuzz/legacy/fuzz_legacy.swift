// libFuzzer target: the legacy HDF5 readers (a Keras 2 / legacy `.h5` model, and a weights
// file laid onto it through `--weights`). The input is written to a file, as `kiln` reads
// one: [1 byte: 0 = read it as a model, 1 = as a weights file onto the seed model][the HDF5 bytes].
// The seed model (Fuzz/legacy/model.h5) is read once; each weights input goes through the
// same `applyWeights` step `KerasModelFile.read(path:weights:)` takes after reading a model.
import Foundation
@testable import KilnKeras
import KilnSupport

let dir = NSTemporaryDirectory() + "kiln-fuzz-legacy-\(getpid())"
let modelPath = ProcessInfo.processInfo.environment["FUZZ_LEGACY_MODEL"] ?? "Fuzz/legacy/model.h5"
// LeakSanitizer does not see the Swift enum payloads the seed model holds (their pointers carry
// tag bits), so the model read once and kept for the whole run is read with leak checks off.
// (Looked up, not linked: FUZZ_ASAN=0 builds have no LeakSanitizer.)
typealias LSanSwitch = @convention(c) () -> Void
func lsan(_ name: String) -> LSanSwitch? { dlsym(nil, name).map { unsafeBitCast($0, to: LSanSwitch.self) } }
let seedModel: (KerasModelSpec, JSON) = {
    lsan("__lsan_disable")?()
    defer { lsan("__lsan_enable")?() }
    do { return try KerasModelFile.readModel(path: modelPath, withRoot: true) } catch {
        fatalError("fuzz_legacy: cannot read the seed model \(modelPath): \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLegacy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/fuzz.h5"
    // A plain write: FileManager.createFile writes atomically, through a second file and an fsync.
    try? Data(bytes: data + 1, count: size - 1).write(to: URL(fileURLWithPath: path))
    if data[0] & 1 == 0 {
        _ = try? KerasModelFile.read(path: path)
    } else {
        var spec = seedModel.0
        try? KerasModelFile.applyWeights(path, to: &spec, root: seedModel.1, modelFile: "model.h5")
    }
    return 0
}
