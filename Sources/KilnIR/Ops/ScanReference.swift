// A scan evaluated the textbook way, in float64: step by step, the cell's
// equations as Keras writes them (keras/src/layers/rnn/*.py), with masks
// keeping the state. Used as the reference for the compiled scan loop.

import Foundation

func activate(_ a: Activation, _ x: Double) -> Double {
    switch a {
    case .tanh: return tanh(x)
    case .sigmoid: return 1 / (1 + exp(-x))
    case .linear: return x
    case .relu: return max(x, 0)
    case .hardSigmoid: return min(max(x / 6 + 0.5, 0), 1)
    default: return .nan
    }
}

/// Outputs of `scan` (see ScanCell.inferScan) for n rows.
func evalScan(_ cell: ScanCell, _ ins: [Tensor], n: Int) throws -> [[Double]] {
    guard ScanCell.activations.contains(cell.activation), ScanCell.activations.contains(cell.recurrentActivation) else {
        throw InterpreterError("scan \(cell): no reference for these activations")
    }
    let proj = ins[0].data, recurrent = ins[1].data
    let rb: [Double]? = cell.recurrentBias ? ins[2].data : nil
    let mask: [Double]? = cell.masked ? ins.last!.data : nil
    let drop: [Double]? = cell.recurrentDropout ? ins[cell.recurrentDropoutInput].data : nil
    let t = ins[0].dims[1], u = cell.units, g = cell.gates
    var sequence = [Double](repeating: 0, count: n * t * u)
    var h = cell.initialState ? ins[cell.initialStateInput].data : [Double](repeating: 0, count: n * u)
    var c = cell.stateInputCount > 1 ? ins[cell.initialStateInput + 1].data : [Double](repeating: 0, count: n * u)
    var gatesRec = [Double](repeating: 0, count: n * t * g), aux = [Double](repeating: 0, count: n * t * u)
    var hPrev = aux
    var last = [Double](repeating: 0, count: n * u)
    for s in 0..<t {
        let step = cell.goBackwards ? t - 1 - s : s
        let out = cell.flipOutput ? t - 1 - s : s
        for r in 0..<n {
            let x = Array(proj[((r * t + step) * g)..<((r * t + step + 1) * g)])
            let hr = Array(h[(r * u)..<((r + 1) * u)])
            // With recurrent dropout, gate block k of the product reads h ⊙ the mask's block k.
            func dropped(_ i: Int, _ col: Int) -> Double { drop.map { $0[r * g + (col / u) * u + i] } ?? 1 }
            var inner = (0..<g).map { col in (0..<u).reduce(0.0) { $0 + hr[$1] * dropped($1, col) * recurrent[$1 * g + col] } }
            if let rb { for col in 0..<g { inner[col] += rb[col] } }
            let keep = mask.map { $0[r * t + step] != 0 } ?? true
            for j in 0..<u {
                var hNew: Double, cNew = c[r * u + j]
                var gates: [Double]
                switch cell.kind {
                case .lstm:
                    let i = activate(cell.recurrentActivation, x[j] + inner[j])
                    let f = activate(cell.recurrentActivation, x[u + j] + inner[u + j])
                    let cc = activate(cell.activation, x[2 * u + j] + inner[2 * u + j])
                    let o = activate(cell.recurrentActivation, x[3 * u + j] + inner[3 * u + j])
                    cNew = f * c[r * u + j] + i * cc
                    hNew = o * activate(cell.activation, cNew)
                    gates = [i, f, cc, o]
                case .gru:
                    guard cell.resetAfter else { throw InterpreterError("scan \(cell): GRU with reset_after false is unrolled, never scanned") }
                    let z = activate(cell.recurrentActivation, x[j] + inner[j])
                    let rr = activate(cell.recurrentActivation, x[u + j] + inner[u + j])
                    let hh = activate(cell.activation, x[2 * u + j] + rr * inner[2 * u + j])
                    hNew = z * hr[j] + (1 - z) * hh
                    gates = [z, rr, hh]
                    aux[(r * t + step) * u + j] = inner[2 * u + j]
                case .simpleRNN:
                    hNew = activate(cell.activation, x[j] + inner[j])
                    gates = [hNew]
                }
                for (k, v) in gates.enumerated() { gatesRec[(r * t + step) * g + k * u + j] = v }
                hPrev[(r * t + step) * u + j] = hr[j]
                if keep { h[r * u + j] = hNew; c[r * u + j] = cNew }
                if cell.kind == .lstm { aux[(r * t + step) * u + j] = c[r * u + j] }
                sequence[(r * t + out) * u + j] = keep || !cell.zeroOutputForMask ? h[r * u + j] : 0
                last[r * u + j] = sequence[(r * t + out) * u + j]
            }
        }
    }
    var outs = [sequence, last, h, c, [Double](repeating: 0, count: n * g)]
    if cell.records { outs += [gatesRec, aux, hPrev] }
    return outs
}
