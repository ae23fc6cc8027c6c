// A Swift program using the demo CNN compiled by Kiln, through the module map
// that `kiln compile --swift-module` writes.
//
//   kiln compile samples/models/mnist_cnn.keras -o OUT --swift-module
//   swiftc -I OUT -L OUT -lmnist_cnn -Xlinker -rpath -Xlinker OUT samples/swift/main.swift -o mnist_demo_swift
//   ./mnist_demo_swift samples/models/mnist_cnn_x.npy samples/models/mnist_cnn_p.npy
//
// The same as samples/c/main.c: predict 4 images, check against Keras,
// take one training step.

import Foundation
import mnist_cnn

/// A tiny .npy reader: little-endian float32 ('<f4'), C order, header v1-v3.
func readNPY(_ path: String) throws -> (shape: [Int], values: [Float]) {
    struct NPYError: Error, CustomStringConvertible { var description: String }
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard bytes.count >= 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
        throw NPYError(description: "\(path) is not a .npy file")
    }
    let v1 = bytes[6] == 1
    let lenBytes = v1 ? 2 : 4
    let headerLen = (0..<lenBytes).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
    let start = 8 + lenBytes
    let header = String(decoding: bytes[start..<start + headerLen], as: UTF8.self)
    guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
          let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
        throw NPYError(description: "\(path): only little-endian float32 in C order is read here")
    }
    let shape = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let count = shape.reduce(1, *)
    let dataStart = start + headerLen
    guard bytes.count >= dataStart + 4 * count else { throw NPYError(description: "\(path) is truncated") }
    let values = bytes[dataStart..<dataStart + 4 * count].withUnsafeBytes { raw in
        (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
    return (shape, values)
}

func lastError(_ m: OpaquePointer?) -> String { String(cString: mnist_cnn_last_error(m)) }

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: \(args[0]) IMAGES.npy KERAS_PREDICTIONS.npy\n".utf8))
    exit(2)
}
do {
    let (xShape, x) = try readNPY(args[1])
    let (_, expected) = try readNPY(args[2])
    let n = xShape[0]
    guard xShape == [n, 28, 28, 1], expected.count == n * 10 else {
        FileHandle.standardError.write(Data("expected images (n, 28, 28, 1) and predictions (n, 10)\n".utf8))
        exit(1)
    }

    guard let m = mnist_cnn_create() else {
        FileHandle.standardError.write(Data("create: \(lastError(nil))\n".utf8))
        exit(1)
    }
    defer { mnist_cnn_destroy(m) }

    // Inference.
    var probs = [Float](repeating: 0, count: n * 10)
    guard mnist_cnn_predict(m, x, &probs, Int64(n)) == 0 else {
        FileHandle.standardError.write(Data("predict: \(lastError(m))\n".utf8))
        exit(1)
    }
    var maxDiff: Float = 0
    for i in 0..<n {
        let row = Array(probs[i * 10..<(i + 1) * 10])
        let best = row.indices.max { row[$0] < row[$1] }!
        print("image \(i): class \(best) (p = \(String(format: "%.4f", row[best])))")
        for k in 0..<10 { maxDiff = max(maxDiff, abs(row[k] - expected[i * 10 + k])) }
    }
    print("max |kiln - keras| = \(maxDiff)")
    guard maxDiff <= 1e-4 else {
        FileHandle.standardError.write(Data("FAIL: the predictions differ from Keras' by more than 1e-4\n".utf8))
        exit(1)
    }

    // One training step with one-hot labels (Keras' predicted classes stand in for real labels).
    var labels = [Float](repeating: 0, count: n * 10)
    for i in 0..<n {
        let row = expected[i * 10..<(i + 1) * 10]
        labels[row.indices.max { row[$0] < row[$1] }!] = 1   // indices of a slice are absolute
    }
    var before: Float = 0, loss: Float = 0, after: Float = 0
    guard mnist_cnn_evaluate(m, x, labels, Int64(n), &before) == 0,
          mnist_cnn_train_step(m, x, labels, Int64(n), &loss) == 0,
          mnist_cnn_evaluate(m, x, labels, Int64(n), &after) == 0 else {
        FileHandle.standardError.write(Data("training: \(lastError(m))\n".utf8))
        exit(1)
    }
    print("train step \(mnist_cnn_iterations(m)): loss \(String(format: "%.4f", loss)) (evaluate: \(String(format: "%.4f", before)) before, \(String(format: "%.4f", after)) after)")
    print("Swift sample OK")
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
}
