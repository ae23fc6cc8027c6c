// A minimal read-only view of an HDF5 file through libhdf5: groups, their
// children and numeric datasets (converted to Float).
// The file is opened from memory (core driver with a file image), so nothing
// is written to disk. libhdf5 is not assumed thread-safe: every call holds a
// process-wide lock.
//
// libhdf5 and crafted files (README "Fuzzing and bounded inputs"): libhdf5 (Debian's
// 1.10.8) has known memory bugs on crafted files -- Fuzz/keras found a heap overflow in its
// symbol-table code within minutes -- and Kiln cannot validate a whole HDF5 file itself.
// So libhdf5 reads a file in Kiln's (the caller's) process only after the very same
// reading -- every libhdf5 call the reader makes, on the same bytes -- ran in a child
// process (`HDF5Lib.preflight`, around KerasArchive.readWeights and, for legacy .h5 models
// and weight files, around LegacyH5's readers in KerasModelFile.read) that exited normally
// within a time limit; a child that crashed or hung makes the file refused with one
// sentence, and the caller's process is untouched. A new reader of HDF5 files wraps ALL
// its libhdf5 work in `preflight` the same way. Before even that, Kiln's own checks: the HDF5
// signature at offset 0, a superblock of version 0 to 3 with 8-byte addresses and
// lengths, base address 0, and an end-of-file address within the image. Kiln then reads
// only what a Keras weights file needs: hard links (soft and external links are not
// followed: an external link would make libhdf5 open another file), each group at most
// once (a cycle of hard links is refused), and numeric datasets whose declared size fits
// `KilnLimits.maxBytes`, the image (at most 1100 bytes per stored byte) and, summed over
// the file, the limit again -- checked before a byte of the data is read. The .keras reader
// reads no attributes; the legacy .h5 reader reads string attributes (model_config,
// layer_names, weight_names) only after walking every global heap collection itself
// (LegacyH5.checkGlobalHeaps). KILN_HDF5_PREFLIGHT=0 skips
// the child process (faster, for trusted files only).

@preconcurrency internal import CHDF5
import Foundation
import KilnSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure inside the HDF5 reader; the archive reader turns it into a
/// `KerasImportError` that names the file.
struct HDF5Failure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

enum HDF5Lib {
    static let lock = NSRecursiveLock()
    nonisolated(unsafe) static var initialized = false

    /// Initializes the library once and turns off its automatic printing of
    /// error stacks to stderr. Call with `lock` held.
    static func ensureOpen() {
        if initialized { return }
        _ = H5open()
        _ = H5Eset_auto2(0 /* H5E_DEFAULT */, nil, nil)
        initialized = true
    }

    /// True in the preflight child, which has one thread and whose copy of `lock` is held by
    /// the parent's thread (a forked lock cannot be taken again).
    nonisolated(unsafe) static var inChild = false

    /// The sanitizers' `__sanitizer_set_death_callback` when the program has one (fuzzing).
    typealias SetCallback = @convention(c) (UnsafeRawPointer?) -> Void
    static let setDeathCallback: SetCallback? = {
        #if os(Linux)
        let everywhere: UnsafeMutableRawPointer? = nil  // RTLD_DEFAULT
        #else
        let everywhere = UnsafeMutableRawPointer(bitPattern: -2)  // RTLD_DEFAULT
        #endif
        return dlsym(everywhere, "__sanitizer_set_death_callback").map { unsafeBitCast($0, to: SetCallback.self) }
    }()

    /// For the tests: what the child does first (e.g. crash), and the base time limit.
    nonisolated(unsafe) static var childHook: (() -> Void)? = nil
    nonisolated(unsafe) static var preflightSeconds = 30.0

    /// Runs `reading` (all of a reader's libhdf5 work on one image of `bytes` bytes, errors
    /// and all) in a child process first. Nil when the child exited normally; else why the
    /// file is refused (a crash, no end within the time limit, or more memory than
    /// `memoryBudget`: the child's address space is capped). The caller then runs the
    /// same reading itself: the same calls on the same bytes. KILN_HDF5_PREFLIGHT=0 skips
    /// the child (faster, for trusted files only).
    static func preflight(bytes: Int, _ reading: () -> Void) -> String? {
        if ProcessInfo.processInfo.environment["KILN_HDF5_PREFLIGHT"] == "0" { return nil }
        // No other thread is inside libhdf5 while the child is made (its state is whole there).
        lock.lock()
        defer { lock.unlock() }
        ensureOpen()
        _ = setDeathCallback  // looked up before the fork (the child takes no loader lock)
        // The child's memory: the limit, plus room for libhdf5's copy of the image and the
        // values read from it. Its address space is capped a little above, so that a file
        // making libhdf5 allocate without end (a loop over damaged object headers does) stops
        // there, and the child's peak tells the caller not to run the same reading itself.
        let budget = memoryBudget(bytes: bytes)
        let pid = fork()
        if pid < 0 {
            return "cannot be checked: no process could be started to read it (\(String(cString: strerror(errno))))"
        }
        if pid == 0 {
            inChild = true
            // The child: no sanitizer or fuzzer report of a libhdf5 fault (the parent refuses
            // the file), no output at all, no exit handlers.
            setDeathCallback?(nil)
            let null = openDevNull()
            if null >= 0 { dup2(null, 1); dup2(null, 2) }
            let start = procStatusKB("VmSize") ?? 0
            let capBytes = rlim_t(start * 1024 + budget + budget / 8)
            var cap = rlimit(rlim_cur: capBytes, rlim_max: capBytes)
            _ = setrlimit(Int32(RLIMIT_AS.rawValue), &cap)
            // An allocation the cap refuses is an error libhdf5 reports, not a crash, and the
            // child's peak need not pass the budget: a deflated chunk's buffer grows by
            // doubling, so the last size that fit can be just over half the cap. The caller
            // has no cap and would then inflate it all. So an API call that fails for want of
            // memory ends the child as over its budget.
            _ = H5Eset_auto2(0 /* H5E_DEFAULT */, { stack, _ in
                _ = H5Ewalk2(stack, H5E_WALK_DOWNWARD, { _, error, _ in
                    if let e = error?.pointee, e.maj_num == H5E_RESOURCE_g,
                       e.min_num == H5E_NOSPACE_g || e.min_num == H5E_CANTALLOC_g {
                        _exit(preflightMemoryExitCode)
                    }
                    return 0
                }, nil)
                return 0
            }, nil)
            childHook?()
            reading()
            if let peak = procStatusKB("VmPeak"), (peak - start) * 1024 > budget { _exit(memoryExitCode) }
            _exit(0)
        }
        // 30 s, and 1 s more per 10 MB. Polled (no thread, no signal handler), every 1 ms at
        // most: a file takes milliseconds to read, and the fuzzer runs this for every input.
        let seconds = preflightSeconds + Double(bytes) / 10e6
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        var pause: UInt32 = 50
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return "cannot be checked: its reading process was lost" }
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return "makes libhdf5 run for more than \(Int(seconds)) seconds (a damaged or crafted file)"
            }
            usleep(pause)
            pause = min(pause * 2, 1000)
        }
        let signal = status & 0x7f
        if signal != 0 {
            return "is damaged: libhdf5 crashed reading it (signal \(signal), in a separate process)"
        }
        let code = (status >> 8) & 0xff
        if code == memoryExitCode {
            return "makes libhdf5 allocate more than \(KilnLimits.describe(budget)) (a damaged or crafted file; \(KilnLimits.overrideHint))"
        }
        if code != 0 {
            return "is damaged: libhdf5 failed reading it (exit status \(code), in a separate process)"
        }
        return nil
    }

    /// The preflight child's exit status when it needed more memory than its budget.
    static let memoryExitCode = preflightMemoryExitCode

    /// Bytes the preflight child may allocate for an image of `bytes` bytes: the limit, plus
    /// twice the image (libhdf5's copy of it and the values read from it).
    static func memoryBudget(bytes: Int) -> Int {
        let (twice, o1) = bytes.multipliedReportingOverflow(by: 2)
        let (sum, o2) = KilnLimits.maxBytes.addingReportingOverflow(twice)
        return o1 || o2 ? Int.max / 4 : min(sum, Int.max / 4)
    }

    /// A "Key:  N kB" value of /proc/self/status (nil where there is none), read with plain
    /// system calls: the preflight child reads its memory use with it.
    static func procStatusKB(_ key: String) -> Int? {
        let fd = open("/proc/self/status", O_RDONLY)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16384)
        var used = 0
        while used < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + used, $0.count - used) }
            if n <= 0 { break }
            used += n
        }
        let prefix = Array((key + ":").utf8)
        for line in buffer[..<used].split(separator: UInt8(ascii: "\n")) where line.starts(with: prefix) {
            let digits = line.dropFirst(prefix.count).filter { $0 >= 48 && $0 <= 57 }
            return Int(String(decoding: digits, as: UTF8.self))
        }
        return nil
    }

    static func withLock<T>(_ body: () throws -> T) rethrows -> T {
        if inChild { ensureOpen(); return try body() }
        lock.lock()
        defer { lock.unlock() }
        ensureOpen()
        return try body()
    }
}

final class HDF5File {
    private(set) var fileID: Int64 = -1
    /// Keeps the image alive while the file is open (the core driver copies
    /// it, but holding it costs nothing and is safe either way).
    private(set) var image: [UInt8]

    /// Opens an HDF5 file image held in memory.
    init(image: [UInt8]) throws {
        self.image = image
        // Check the signature first: libhdf5 would search the whole image
        // for a superblock at 512, 1024, ... offsets.
        let sig: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        guard image.count >= 8, Array(image[0..<8]) == sig else {
            throw HDF5Failure("is not an HDF5 file (bad signature)")
        }
        try HDF5File.checkSuperblock(image)
        try open()
    }

    private func open() throws {
        let fid: hid_t = HDF5Lib.withLock {
            let fapl = H5Pcreate(H5P_CLS_FILE_ACCESS_ID_g)
            if fapl < 0 { return -1 }
            defer { H5Pclose(fapl) }
            if H5Pset_fapl_core(fapl, 1 << 20, false) < 0 { return -1 }
            let ok = self.image.withUnsafeBytes { raw -> Bool in
                H5Pset_file_image(fapl, UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count) >= 0
            }
            if !ok { return -1 }
            // The name is only a label: the core driver reads the image. It must name no file that
            // could exist, or libhdf5 opens that file instead (a model.weights.h5 in the current
            // folder did); nothing can exist below /dev/null.
            return H5Fopen("/dev/null/kiln-model.weights.h5", 0 /* H5F_ACC_RDONLY */, fapl)
        }
        if fid < 0 { throw HDF5Failure("is damaged or truncated (libhdf5 cannot open it)") }
        fileID = fid
    }

    /// Kiln's own checks of the superblock, before libhdf5 sees the image.
    static func checkSuperblock(_ image: [UInt8]) throws {
        func u64(_ at: Int) -> UInt64? {
            guard at + 8 <= image.count else { return nil }
            var v: UInt64 = 0
            for k in (0..<8).reversed() { v = v << 8 | UInt64(image[at + k]) }
            return v
        }
        guard image.count > 9 else { throw HDF5Failure("is truncated (no superblock)") }
        let version = image[8]
        let sizes: (offsets: Int, lengths: Int), base: Int, eof: Int
        switch version {
        case 0, 1:
            sizes = (13, 14)
            base = version == 0 ? 24 : 28
            eof = base + 16
        case 2, 3:
            sizes = (9, 10)
            base = 12
            eof = 28
        default:
            throw HDF5Failure("has an HDF5 superblock of version \(version), which Kiln does not read")
        }
        guard image.count > sizes.lengths, image[sizes.offsets] == 8, image[sizes.lengths] == 8 else {
            throw HDF5Failure("is truncated or uses addresses other than 8 bytes wide, which Kiln does not read")
        }
        guard let b = u64(base), let e = u64(eof) else { throw HDF5Failure("is truncated (its superblock is cut short)") }
        guard b == 0 else { throw HDF5Failure("has an HDF5 superblock with a base address other than 0, which Kiln does not read") }
        guard e <= UInt64(image.count) else {
            throw HDF5Failure("is truncated: its superblock declares \(e) bytes but it has \(image.count)")
        }
    }

    /// Bytes of dataset values read from this file so far (bounded by `KilnLimits.maxBytes`).
    private var bytesRead = 0
    /// The file address of the object `path` names through hard links only, or nil.
    func address(_ path: String) -> UInt64? {
        HDF5Lib.withLock {
            var prefix = ""
            var addr: UInt64? = nil
            for comp in path.split(separator: "/", omittingEmptySubsequences: true) {
                prefix = prefix.isEmpty ? String(comp) : prefix + "/" + comp
                var info = H5L_info_t()
                if H5Lget_info(fileID, prefix, &info, 0) < 0 || info.type != H5L_TYPE_HARD { return nil }
                addr = UInt64(info.u.address)
            }
            return addr
        }
    }

    deinit {
        if fileID >= 0 {
            let fid = fileID
            HDF5Lib.withLock {
                _ = H5Fclose(fid)
                // libhdf5 keeps freed blocks on free lists of its own and the last error's
                // records on its error stack; give both back (a host reads a model once, then
                // runs for days; the fuzzer's leak checks see every exec's memory returned).
                _ = H5Eclear2(0 /* H5E_DEFAULT */)
                _ = H5garbage_collect()
            }
        }
    }

    enum Kind { case group, dataset, other }

    /// The kind of the object at `path` ("a/b/c"), or nil when any component
    /// is missing.
    func kind(_ path: String) -> Kind? {
        HDF5Lib.withLock {
            var prefix = ""
            for comp in path.split(separator: "/", omittingEmptySubsequences: true) {
                prefix = prefix.isEmpty ? String(comp) : prefix + "/" + comp
                if H5Lexists(fileID, prefix, 0) <= 0 { return nil }
                // Hard links only: an external link would open another file, a soft link
                // can point anywhere in this one.
                var info = H5L_info_t()
                if H5Lget_info(fileID, prefix, &info, 0) < 0 || info.type != H5L_TYPE_HARD { return nil }
            }
            if prefix.isEmpty { return .group }
            let oid = H5Oopen(fileID, prefix, 0)
            if oid < 0 { return nil }
            defer { H5Oclose(oid) }
            switch H5Iget_type(oid) {
            case H5I_GROUP: return .group
            case H5I_DATASET: return .dataset
            default: return .other
            }
        }
    }

    func exists(_ path: String) -> Bool { kind(path) != nil }

    /// Names of the links in the group at `path`, in HDF5's (alphabetical) order.
    func children(_ path: String) -> [String] {
        guard kind(path) == .group else { return [] }
        return HDF5Lib.withLock {
            let gid = H5Gopen2(fileID, path.isEmpty ? "/" : path, 0)
            if gid < 0 { return [] }
            defer { H5Gclose(gid) }
            var info = H5G_info_t()
            if H5Gget_info(gid, &info) < 0 { return [] }
            var names: [String] = []
            let n = min(info.nlinks, 1_000_000)
            for idx in 0..<n {
                let len = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, idx, nil, 0, 0)
                if len < 0 || len > 65536 { continue }
                var buf = [CChar](repeating: 0, count: Int(len) + 1)
                let got = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, idx, &buf, buf.count, 0)
                if got < 0 { continue }
                names.append(String(decoding: buf.prefix(Int(got)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return names
        }
    }

    /// Reads the numeric dataset at `path`, converted to Float (float32 as
    /// is, float64 rounded to nearest, integers converted).
    func readFloats(_ path: String) throws -> (shape: [Int], values: [Float]) {
        guard kind(path) == .dataset else { throw HDF5Failure("has no dataset '\(path)'") }
        return try HDF5Lib.withLock { () throws -> (shape: [Int], values: [Float]) in
            let did = H5Dopen2(fileID, path, 0)
            if did < 0 { throw HDF5Failure("cannot open dataset '\(path)'") }
            defer { H5Dclose(did) }
            let space = H5Dget_space(did)
            if space < 0 { throw HDF5Failure("cannot read the shape of dataset '\(path)'") }
            defer { H5Sclose(space) }
            let rank = H5Sget_simple_extent_ndims(space)
            if rank < 0 || rank > 32 { throw HDF5Failure("has a dataset '\(path)' with an unreadable shape") }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            if rank > 0 {
                if H5Sget_simple_extent_dims(space, &dims, nil) < 0 {
                    throw HDF5Failure("has a dataset '\(path)' with an unreadable shape")
                }
            }
            var shape: [Int] = []
            var count = 1
            for d in dims {
                guard d <= UInt64(Int32.max) else { throw HDF5Failure("has a dataset '\(path)' that is too large") }
                shape.append(Int(d))
                let (c, o) = count.multipliedReportingOverflow(by: Int(d))
                if o || c > 1 << 32 { throw HDF5Failure("has a dataset '\(path)' that is too large") }
                count = c
            }
            let ftype = H5Dget_type(did)
            if ftype < 0 { throw HDF5Failure("cannot read the type of dataset '\(path)'") }
            defer { H5Tclose(ftype) }
            let cls = H5Tget_class(ftype)
            let size = H5Tget_size(ftype)
            guard cls == H5T_FLOAT || cls == H5T_INTEGER else {
                throw HDF5Failure("has a dataset '\(path)' whose type is not a number")
            }
            if count == 0 { return (shape, []) }
            // A crafted file can declare a huge dataset with no data behind
            // it; refuse sizes no real (even deflated) file of this size holds.
            let bytes = count.multipliedReportingOverflow(by: max(size, 1))
            if bytes.overflow || bytes.partialValue / 1100 > image.count {
                throw HDF5Failure("has a dataset '\(path)' larger than the file could hold")
            }
            // In memory: 4 bytes per value, 12 while a non-float32 dataset is converted.
            let (need, o1) = count.multipliedReportingOverflow(by: cls == H5T_FLOAT && size == 4 ? 4 : 12)
            let (total, o2) = bytesRead.addingReportingOverflow(need)
            if o1 || o2 || total > KilnLimits.maxBytes {
                throw HDF5Failure("has a dataset '\(path)' of shape \(shape) that would bring the weights read to \(o1 || o2 ? "more than \(Int.max) bytes" : KilnLimits.describe(total)), more than Kiln allows (\(KilnLimits.overrideHint))")
            }
            bytesRead = total
            if cls == H5T_FLOAT && size == 4 {
                var out = [Float](repeating: 0, count: count)
                let rc = out.withUnsafeMutableBytes { H5Dread(did, H5T_NATIVE_FLOAT_g, 0, 0, 0, $0.baseAddress) }
                if rc < 0 { throw HDF5Failure("cannot read dataset '\(path)' (damaged or truncated)") }
                return (shape, out)
            }
            var tmp = [Double](repeating: 0, count: count)
            let rc = tmp.withUnsafeMutableBytes { H5Dread(did, H5T_NATIVE_DOUBLE_g, 0, 0, 0, $0.baseAddress) }
            if rc < 0 { throw HDF5Failure("cannot read dataset '\(path)' (damaged or truncated)") }
            return (shape, tmp.map { Float($0) })
        }
    }
}

/// `HDF5Lib.memoryExitCode`, as a constant a C callback in the child can use.
private let preflightMemoryExitCode: Int32 = 86

private func openDevNull() -> Int32 { open("/dev/null", O_WRONLY) }
