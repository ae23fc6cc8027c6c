// The prediction half of the cumulative-sum sample, from Swift through the module
// map `kiln compile --swift-module` writes (samples/cumsum/README.md).
//
//   cumsum_swift WEIGHTS TEST MIN_ACCURACY [SEED]
//
// Loads the state the C program trained and saved (cumsum_load_weights), labels
// TEST fresh sequences made with the same generator as the C program (seed SEED,
// default 7), prints expected vs predicted for the first three and the accuracy,
// and exits 1 when the accuracy is below MIN_ACCURACY.

import Foundation
import cumsum

let steps = 10
let limit = Double(steps) / 4

/// The C program's generator (splitmix64) and sequences: x uniform in [0, 1), y = 1 once the running sum passes the limit.
struct Sequences {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func sequence() -> (x: [Float], y: [Float]) {
        var sum = 0.0
        var x: [Float] = [], y: [Float] = []
        for _ in 0..<steps {
            x.append(Float(Double(next() >> 11) * 0x1.0p-53))
            sum += Double(x.last!)
            y.append(sum > limit ? 1 : 0)
        }
        return (x, y)
    }
}

func fail(_ message: String, _ status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(status)
}

let args = CommandLine.arguments
guard args.count == 4 || args.count == 5, let test = Int(args[2]), test > 0, let minAccuracy = Double(args[3]),
      let seed = args.count == 5 ? UInt64(args[4]) : 7 else {
    fail("usage: \(args[0]) WEIGHTS TEST MIN_ACCURACY [SEED]", 2)
}
guard let m = cumsum_create() else { fail("cumsum_swift: create: \(String(cString: cumsum_last_error(nil)))") }
defer { cumsum_destroy(m) }
guard cumsum_load_weights(m, args[1]) == 0 else { fail("cumsum_swift: load \(args[1]): \(String(cString: cumsum_last_error(m)))") }

var gen = Sequences(state: seed)
var xs: [Float] = [], ys: [Float] = []
for _ in 0..<test {
    let (x, y) = gen.sequence()
    xs += x
    ys += y
}
var ps = [Float](repeating: 0, count: xs.count)
guard cumsum_predict(m, xs, &ps, Int64(test)) == 0 else { fail("cumsum_swift: predict: \(String(cString: cumsum_last_error(m)))") }

var right = 0
for i in 0..<test {
    let row = i * steps..<(i + 1) * steps
    let predicted = ps[row].map { $0 > 0.5 ? 1 : 0 }
    let expected = ys[row].map { Int($0) }
    right += zip(predicted, expected).filter { $0 == $1 }.count
    if i < 3 {
        print("sequence \(i)")
        print("  x        " + xs[row].map { String(format: " %.2f", $0) }.joined())
        print("  expected " + expected.map { "    \($0)" }.joined())
        print("  predicted" + predicted.map { "    \($0)" }.joined())
    }
}
let accuracy = Double(right) / Double(test * steps)
print("Swift: accuracy on \(test) fresh sequences (seed \(seed)): \(String(format: "%.4f", accuracy)) (\(right) of \(test * steps) steps)")
if accuracy < minAccuracy { fail("cumsum_swift: FAIL: accuracy \(String(format: "%.4f", accuracy)) is below \(minAccuracy)") }
