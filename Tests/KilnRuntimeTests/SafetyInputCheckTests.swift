// The whole-file input check of `kiln predict/fit --check-inputs` (InputCheck.swift). The
// library's own check (NAME_set_check_inputs), the busy flag and crash-safe saves are tested
// by the C programs of Tests/runtime (tools/sanitize.sh, run by `make test`).

import XCTest
@testable import KilnRuntime

final class SafetyInputCheckTests: XCTestCase {
    func testFirstNonFiniteNamesRowElementAndKind() {
        var x = HostTensor(shape: [4, 2, 3], floats: (0..<24).map { Float($0) })
        XCTAssertNil(x.firstNonFinite())
        x.floats[3 * 6 + 4] = .nan
        x.floats[2 * 6 + 1] = -.infinity
        let bad = x.firstNonFinite()
        XCTAssertEqual(bad?.row, 2)
        XCTAssertEqual(bad?.element, 1)
        XCTAssertEqual(bad?.kind, "-inf")
        x.floats[2 * 6 + 1] = .infinity
        XCTAssertEqual(x.firstNonFinite()?.kind, "inf")
        x.floats[2 * 6 + 1] = 0
        XCTAssertEqual(x.firstNonFinite()?.kind, "NaN")
        XCTAssertEqual(x.firstNonFinite()?.row, 3)
        XCTAssertNil(HostTensor(shape: [2, 2], ints: [1, 2, 3, 4]).firstNonFinite(), "integers are always finite")
        XCTAssertEqual(HostTensor(shape: [3], floats: [1, .nan, 2]).firstNonFinite()?.row, 1, "rank 1: one value per row")
    }

    func testCheckFiniteNamesTheTensor() throws {
        let good = HostTensor(shape: [2, 2], floats: [1, 2, 3, 4])
        let bad = HostTensor(shape: [2, 2], floats: [1, 2, 3, .nan])
        XCTAssertNoThrow(try checkFinite([good, good], names: ["a", "b"], role: "input"))
        XCTAssertThrowsError(try checkFinite([good, bad], names: ["a", "b"], role: "target")) { e in
            XCTAssertEqual((e as? KilnRuntimeError)?.message,
                           "target 'b' row 1 holds NaN (element 1 of the row); --check-inputs refuses non-finite values.")
        }
    }
}
