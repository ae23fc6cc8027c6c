// libFuzzer target: the history reader of `kiln plot` (JSON parser, {"loss": [...]}) and the SVG it draws.
import Kiln

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHistory(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let values = try? LossPlot.readHistory(bytes, name: "fuzz.json") {
        _ = LossPlot.svg([("fuzz", values)])
    }
    return 0
}
