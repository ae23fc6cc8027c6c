// `kiln plot`: history files, as `kiln fit --history` writes them, read with Kiln's one
// JSON reader and drawn as one SVG.

import Foundation
import XCTest
import Kiln
import KilnRuntime

final class LossPlotTests: XCTestCase {
    func testReadsHistoriesThatFitWrites() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-plot-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var diverged = History(loss: [0.9, .infinity, 0.4])
        diverged.metricNames = ["accuracy"]
        diverged.metrics = ["accuracy": [0.1, 0.2, 0.3]]
        try History(loss: [1.0, 0.5, 0.25]).json().write(toFile: dir + "/adam.json", atomically: true, encoding: .utf8)
        try diverged.json().write(toFile: dir + "/sgd.json", atomically: true, encoding: .utf8)
        try LossPlot.write(histories: [dir + "/adam.json", dir + "/sgd.json"], to: dir + "/loss.svg")
        let svg = try String(contentsOfFile: dir + "/loss.svg", encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertTrue(svg.contains(">adam<") && svg.contains(">sgd<"), svg)

        try "{\"loss\": [0.5, \"x\"]}".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LossPlot.write(histories: [dir + "/bad.json"], to: dir + "/bad.svg")) {
            XCTAssertEqual("\($0)", "\(dir)/bad.json: \"loss\" holds a value that is not a number")
        }
        try "{\"accuracy\": [0.5]}".write(toFile: dir + "/none.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LossPlot.write(histories: [dir + "/none.json"], to: dir + "/none.svg")) {
            XCTAssertEqual("\($0)", "\(dir)/none.json is not a history file: expected {\"loss\": [numbers]}")
        }
    }
}
