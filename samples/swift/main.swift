// A Swift program using the demo CNN compiled by Kiln, through the typed wrapper
// that `kiln compile --swift` writes (OUT/mnist_cnn.swift, class MnistCnn, over the
// module map OUT/module.modulemap), reading its .npy files with Kiln's own reader
// (NPY.read of the KilnRuntime library).
//
//   kiln compile samples/models/mnist_cnn.keras -o OUT --swift
//   swiftc -I OUT -L OUT -lmnist_cnn -Xlinker -rpath -Xlinker OUT \
//          -I .build/debug/Modules -L .build/debug -lKilnRuntimeShared -Xlinker -rpath -Xlinker .build/debug \
//          samples/swift/main.swift OUT/mnist_cnn.swift -o mnist_demo_swift
//   ./mnist_demo_swift samples/models/mnist_cnn_x.npy samples/models/mnist_cnn_p.npy
//
// (A SwiftPM package depends on the KilnRuntime product instead; README, "From Swift".)
// The same as samples/c/main.c: predict 4 images, check against Keras,
// take one training step.

import Foundation
import KilnRuntime

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(1)
}

let args = CommandLine.arguments
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: \(args[0]) IMAGES.npy KERAS_PREDICTIONS.npy\n".utf8))
    exit(2)
}
do {
    let x = try NPY.read(path: args[1])          // float32 (n, 28, 28, 1); float64 files are converted
    let expected = try NPY.read(path: args[2])   // Keras' probabilities (n, 10)
    let n = x.rows
    guard expected.shape == [n, 10], expected.dtype == .float32 else {
        fail("expected Keras' predictions of shape (\(n), 10), found \(expected.shape)")
    }

    let model = try MnistCnn()
    let info = MnistCnn.info
    print("model \(info.model), compiled by Kiln \(info.kilnVersion), source sha256 \(info.sourceSHA256.prefix(12))...")

    // Inference: the wrapper checks the shape against the model's (-1, 28, 28, 1).
    let probs = try model.predict(MnistCnn.Tensor(shape: x.shape, values: x.floats))
    var maxDiff: Float = 0
    for i in 0..<n {
        let row = Array(probs.values[i * 10..<(i + 1) * 10])
        let best = row.indices.max { row[$0] < row[$1] }!
        print("image \(i): class \(best) (p = \(String(format: "%.4f", row[best])))")
        for k in 0..<10 { maxDiff = max(maxDiff, abs(row[k] - expected.floats[i * 10 + k])) }
    }
    print("max |kiln - keras| = \(maxDiff)")
    guard maxDiff <= 1e-4 else { fail("FAIL: the predictions differ from Keras' by more than 1e-4") }

    // A wrong shape is refused with a message naming the input.
    do {
        _ = try model.predict(MnistCnn.Tensor(shape: [n, 784], values: x.floats))
        fail("FAIL: a (n, 784) input was accepted")
    } catch let e as MnistCnn.Error {
        print("refused as expected: \(e)")
    }

    // One training step with one-hot labels (Keras' predicted classes stand in for real labels).
    var labels = [Float](repeating: 0, count: n * 10)
    for i in 0..<n {
        let row = expected.floats[i * 10..<(i + 1) * 10]
        labels[row.indices.max { row[$0] < row[$1] }!] = 1   // indices of a slice are absolute
    }
    let images = MnistCnn.Tensor(shape: x.shape, values: x.floats)
    let targets = MnistCnn.Tensor(shape: [n, 10], values: labels)
    let before = try model.evaluate(images, targets)
    let loss = try model.trainStep(images, targets)
    let after = try model.evaluate(images, targets)
    print("train step \(model.iterations): loss \(String(format: "%.4f", loss)) (evaluate: \(String(format: "%.4f", before)) before, \(String(format: "%.4f", after)) after)")
    guard after < before else { fail("FAIL: the training step did not lower the loss") }

    // Weights round trip: save, reset to the library's weights, load back.
    let trained = try model.getWeights()
    let path = NSTemporaryDirectory() + "mnist_demo_swift-\(getpid()).bin"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try model.save(to: path)
    try model.reset()
    guard try model.getWeights()[0].values != trained[0].values else { fail("FAIL: reset kept the trained weights") }
    try model.load(from: path)
    guard try model.getWeights().map(\.values) == trained.map(\.values) else { fail("FAIL: load did not restore the saved weights") }
    print("Swift sample OK")
} catch {
    fail("\(error)")
}
