// An exclusive advisory lock on a file (flock(2)), held by one pull of one model so that two
// processes resolving the same name do not write the same `.partial`. The kernel drops the lock
// when the process dies, so an interrupted pull never leaves a stuck lock behind.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class FileLock {
    private var fd: Int32

    /// Takes the lock, calling `onWait` once first if another process holds it.
    init(path: String, onWait: () -> Void) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ModelStoreError.io(operation: "open lock", path: path, reason: String(cString: strerror(errno)))
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            onWait()
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    let reason = String(cString: strerror(errno))
                    close(fd)
                    throw ModelStoreError.io(operation: "lock", path: path, reason: reason)
                }
            }
        }
    }

    func unlock() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { unlock() }
}
