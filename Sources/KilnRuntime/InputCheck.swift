// `kiln predict --check-inputs` and `kiln fit --check-inputs`: whole .npy arrays checked for
// NaN and infinities before anything runs, so that the row named is the row of the file (the
// library's own check, NAME_set_check_inputs, names the row of one call's batch).

extension HostTensor {
    /// The first NaN or infinite value of a float tensor: its row (index along the first axis),
    /// its element within the row and "NaN", "inf" or "-inf"; nil when every value is finite
    /// or the tensor holds integers.
    public func firstNonFinite() -> (row: Int, element: Int, kind: String)? {
        guard dtype == .float32 else { return nil }
        let perRow = Swift.max(1, shape.dropFirst().reduce(1, *))
        guard let i = floats.firstIndex(where: { !$0.isFinite }) else { return nil }
        let v = floats[i]
        return (i / perRow, i % perRow, v.isNaN ? "NaN" : v < 0 ? "-inf" : "inf")
    }
}

/// Throws, naming the tensor and the row, when one of `tensors` holds NaN or an infinity:
/// "input 'x' row 3 holds NaN (element 1 of the row)." `role`: "input" or "target".
public func checkFinite(_ tensors: [HostTensor], names: [String], role: String) throws {
    for (i, t) in tensors.enumerated() {
        guard let bad = t.firstNonFinite() else { continue }
        let name = i < names.count ? names[i] : "#\(i)"
        throw KilnRuntimeError("\(role) '\(name)' row \(bad.row) holds \(bad.kind) (element \(bad.element) of the row); --check-inputs refuses non-finite values.")
    }
}
