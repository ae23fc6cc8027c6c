// libFuzzer target: the .keras reader (zip, config.json, the HDF5 weights through libhdf5).
// An input that starts with "PK" is a whole .keras archive. Any other input is split as
// [4-byte little-endian length N][N bytes of config.json][model.weights.h5]: mutations then
// reach the config and HDF5 readers without being stopped by the zip's CRC checks.
import KilnKeras

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKeras(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if bytes.starts(with: [0x50, 0x4B]) {
        _ = try? KerasArchive.read(data: bytes, name: "fuzz.keras")
    } else if bytes.count >= 4 {
        let n = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        let split = min(4 + n, bytes.count)
        _ = try? KerasArchive.read(config: Array(bytes[4..<split]), weights: { Array(bytes[split...]) }, display: "fuzz.keras")
    }
    return 0
}
