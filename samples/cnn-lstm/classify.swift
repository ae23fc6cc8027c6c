// classify.swift: the CNN-LSTM sample's Swift program. Classifies the held-out
// digits with the weights the C program trained, through the module map that
// `kiln compile --swift-module` writes.
//
//   kiln compile samples/cnn-lstm/models/cnn_lstm_digits.keras -o OUT --name cnn_lstm --swift-module
//   swiftc -I OUT -L OUT -lcnn_lstm -Xlinker -rpath -Xlinker OUT samples/cnn-lstm/classify.swift -o OUT/classify
//   OUT/classify OUT/weights.bin OUT/heldout_x.npy OUT/heldout_y.npy [--expect-correct K] [--min-accuracy P]
//
// (For the MNIST model, cnn_lstm_mnist.keras, add `-D TILE14` to swiftc: the
// program then takes tiles of 14x14 instead of 4x4, as train.c's -DTILE.)
//
// Loads the trained state with cnn_lstm_load_weights, predicts every held-out
// image (tiles (n, 4, TILE, TILE, 1) float32, labels (n,) int32, as train.c's
// --write-heldout writes them), prints a confusion matrix and the accuracy.
// Exits 1 when the accuracy is below --min-accuracy, or when the number of
// correct images differs from --expect-correct (the C program's count: the
// same weights and inputs must give the same predictions).

import Foundation
import cnn_lstm

#if TILE14
let tile = 14   // MNIST: 28x28 images
#else
let tile = 4    // UCI digits: 8x8 images
#endif

struct Failure: Error, CustomStringConvertible { var description: String }

/// The header of a .npy file (version 1 to 3): its dtype, shape and where the data starts.
func readNPY(_ path: String) throws -> (descr: String, shape: [Int], data: [UInt8]) {
    let bytes: [UInt8]
    do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
        throw Failure(description: "cannot read \(path): \(error.localizedDescription)")
    }
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8), (1...3).contains(bytes[6]) else {
        throw Failure(description: "\(path) is not a .npy file (version 1 to 3).")
    }
    let wide = bytes[6] != 1
    let lenBytes = wide ? 4 : 2
    guard bytes.count >= 8 + lenBytes else { throw Failure(description: "\(path) is truncated in its header.") }
    let headerLen = (0..<lenBytes).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
    let start = 8 + lenBytes
    guard bytes.count >= start + headerLen else { throw Failure(description: "\(path) is truncated in its header.") }
    let header = String(decoding: bytes[start..<start + headerLen], as: UTF8.self)
    func field(_ key: String, until end: Character) -> String? {
        guard let r = header.range(of: "'\(key)': ") else { return nil }
        let rest = header[r.upperBound...]
        guard let stop = rest.dropFirst().firstIndex(of: end) else { return nil }
        return String(rest[rest.startIndex...stop])
    }
    guard let descr = field("descr", until: "'").map({ String($0.dropFirst().dropLast()) }),
          let order = field("fortran_order", until: ","), let shapeText = field("shape", until: ")") else {
        throw Failure(description: "\(path): the .npy header '\(header.trimmingCharacters(in: .whitespacesAndNewlines))' lacks descr, fortran_order or shape.")
    }
    guard order.hasPrefix("False") else { throw Failure(description: "\(path) is in Fortran order; write it in C order.") }
    let shape = try shapeText.dropFirst().dropLast().split(separator: ",").map { part -> Int in
        guard let d = Int(part.trimmingCharacters(in: .whitespaces)), d >= 0 else {
            throw Failure(description: "\(path): shape \(shapeText) is not a tuple of sizes.")
        }
        return d
    }
    let count = shape.reduce(1, *)
    let data = Array(bytes[(start + headerLen)...])
    guard data.count == 4 * count else {
        throw Failure(description: "\(path): shape \(shapeText) needs \(4 * count) bytes of 4-byte values, the file holds \(data.count).")
    }
    return (descr, shape, data)
}

func words(_ data: [UInt8]) -> [UInt32] {
    data.withUnsafeBytes { raw in (0..<data.count / 4).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
}

func lastError(_ m: OpaquePointer?) -> String { String(cString: cnn_lstm_last_error(m)) }

func run(_ args: [String]) throws -> Int32 {
    var positional: [String] = []
    var expectCorrect: Int? = nil
    var minAccuracy = 0.0
    var i = 1
    while i < args.count {
        switch args[i] {
        case "--expect-correct", "--min-accuracy":
            guard i + 1 < args.count, let v = Double(args[i + 1]) else { throw Failure(description: "\(args[i]) takes a number.") }
            if args[i] == "--expect-correct" { expectCorrect = Int(v) } else { minAccuracy = v }
            i += 2
        default:
            positional.append(args[i]); i += 1
        }
    }
    guard positional.count == 3 else {
        FileHandle.standardError.write(Data("usage: \(args[0]) WEIGHTS HELDOUT_X.npy HELDOUT_Y.npy [--expect-correct K] [--min-accuracy P]\n".utf8))
        return 2
    }
    let (weights, xPath, yPath) = (positional[0], positional[1], positional[2])
    let x = try readNPY(xPath), y = try readNPY(yPath)
    guard x.descr == "<f4", x.shape.count == 5, x.shape.dropFirst() == [4, tile, tile, 1] else {
        throw Failure(description: "\(xPath) holds \(x.descr) \(x.shape); this program, built for tiles of \(tile)x\(tile)"
                      + " (\(tile == 4 ? "the UCI digits; -D TILE14 for MNIST" : "MNIST")), expects float32 ('<f4') tiles of shape (n, 4, \(tile), \(tile), 1).")
    }
    let n = x.shape[0]
    guard y.descr == "<i4", y.shape == [n] else {
        throw Failure(description: "\(yPath) holds \(y.descr) \(y.shape); expected \(n) int32 ('<i4') labels, one per image of \(xPath).")
    }
    let tiles = words(x.data).map { Float(bitPattern: $0) }
    let labels = words(y.data).map { Int(Int32(bitPattern: $0)) }

    guard let m = cnn_lstm_create() else { throw Failure(description: "cnn_lstm_create: \(lastError(nil))") }
    defer { cnn_lstm_destroy(m) }
    guard cnn_lstm_load_weights(m, weights) == 0 else { throw Failure(description: "cnn_lstm_load_weights(\(weights)): \(lastError(m))") }

    var probs = [Float](repeating: 0, count: n * 10)
    guard cnn_lstm_predict(m, tiles, &probs, Int64(n)) == 0 else { throw Failure(description: "cnn_lstm_predict: \(lastError(m))") }
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: 10), count: 10)
    var correct = 0
    for r in 0..<n {
        let row = probs[r * 10..<(r + 1) * 10]
        let best = row.indices.max { row[$0] < row[$1] }! - r * 10
        confusion[labels[r]][best] += 1
        if best == labels[r] { correct += 1 }
    }
    print("confusion matrix (rows: true digit, columns: predicted)")
    print("     " + (0..<10).map { String(format: "%4d", $0) }.joined())
    for d in 0..<10 { print(String(format: "%4d ", d) + confusion[d].map { String(format: "%4d", $0) }.joined()) }
    let accuracy = 100.0 * Double(correct) / Double(n)
    print(String(format: "Swift: held-out accuracy %d/%d = %.2f%% with the weights of %@", correct, n, accuracy, weights))
    if let k = expectCorrect, k != correct {
        FileHandle.standardError.write(Data("FAIL: the C program classified \(k) images correctly, Swift \(correct), with the same weights\n".utf8))
        return 1
    }
    if accuracy < minAccuracy {
        FileHandle.standardError.write(Data(String(format: "FAIL: held-out accuracy %.2f%% is below %.1f%%\n", accuracy, minAccuracy).utf8))
        return 1
    }
    return 0
}

do {
    exit(try run(CommandLine.arguments))
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
}
