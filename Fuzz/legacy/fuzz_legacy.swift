// libFuzzer target: the legacy HDF5 readers (a Keras 2 / legacy `.h5` model, and a weights
// file laid onto it through `--weights`). The input is written to a file, as `kiln` reads
// one: [1 byte: 0 = read it as a model, 1 = as a weights file onto the seed model][the HDF5 bytes].
import Foundation
import KilnKeras

let dir = NSTemporaryDirectory() + "kiln-fuzz-legacy-\(getpid())"
let modelPath = ProcessInfo.processInfo.environment["FUZZ_LEGACY_MODEL"] ?? "Fuzz/legacy/model.h5"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLegacy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let path = dir + "/fuzz.h5"
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes: data + 1, count: size - 1))
    if data[0] & 1 == 0 {
        _ = try? KerasModelFile.read(path: path)
    } else {
        _ = try? KerasModelFile.read(path: modelPath, weights: path)
    }
    return 0
}
