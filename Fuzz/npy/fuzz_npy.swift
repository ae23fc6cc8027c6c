// libFuzzer target: the .npy reader (header parser, dtype conversion, Fortran order, bounds).
import KilnRuntime

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let t = try? NPY.read(data: bytes, name: "fuzz.npy") {
        // What is read must encode and read back to the same tensor.
        let again = try? NPY.read(data: NPY.encode(t), name: "again.npy")
        precondition(again?.shape == t.shape, "an .npy file read did not read back after encoding")
    }
    return 0
}
