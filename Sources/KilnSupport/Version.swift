// The one place that defines Kiln's version: `kiln --version` prints it and every
// compiled library's NAME_info() carries it.

public enum KilnVersion {
    /// Kiln's version, "MAJOR.MINOR.PATCH".
    public static let string = "0.13.0"
}
