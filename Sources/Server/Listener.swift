// A TCP listener on POSIX sockets (no dependencies): an accept loop on its own thread, a thread a
// connection (at most `maxConnections` at once; more are answered 503), read and write timeouts so
// that a silent or stalled client never holds a thread for ever, and one request per connection.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public enum ListenerError: Error, CustomStringConvertible {
    case resolve(host: String, port: Int, message: String)
    case bind(host: String, port: Int, message: String)

    public var description: String {
        switch self {
        case let .resolve(h, p, m): return "cannot resolve \(h):\(p): \(m)"
        case let .bind(h, p, m): return "cannot listen on \(h):\(p): \(m)"
        }
    }
}

/// A connected socket as a byte source and sink.
final class SocketConnection: ByteSink, ByteSource, @unchecked Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw HTTPError(408, "the client sent nothing for too long") }
            return 0  // reset by the peer: the same as its end
        }
    }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            #if canImport(Glibc)
            let flags = Int32(MSG_NOSIGNAL)
            #else
            let flags: Int32 = 0
            #endif
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, flags) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HTTPError(499, "the client is gone (\(String(cString: strerror(errno))))")
            }
            sent += n
        }
    }

    var peerGone: Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }
}

public final class HTTPListener: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest, ResponseWriter) -> Void
    public let host: String
    /// The bound port (the system's choice when 0 was asked for).
    public private(set) var port: Int
    public var maxConnections = 128
    /// Seconds a connection may wait for the client's bytes, or for room to send.
    public var timeout: Int = 60
    public var limits = HTTPLimits()
    private let fd: Int32
    private let handler: Handler
    private let lock = NSLock()
    private var open = 0
    private var stopped = false
    private var acceptThread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    public init(host: String, port: Int, handler: @escaping Handler) throws {
        self.host = host
        self.handler = handler
        guard (0...65535).contains(port) else { throw ListenerError.bind(host: host, port: port, message: "the port must be 0…65535") }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw ListenerError.resolve(host: host, port: port, message: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var bound: Int32 = -1
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let a = candidate {
            candidate = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 && listen(s, 128) == 0 {
                bound = s
                break
            }
            lastError = String(cString: strerror(errno))
            SocketConnection(fd: s).close()
        }
        guard bound >= 0 else { throw ListenerError.bind(host: host, port: port, message: lastError) }
        fd = bound
        // The port actually bound (port 0: the system's pick).
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        self.port = port
        withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                if getsockname(bound, sa, &length) == 0 {
                    if Int32(sa.pointee.sa_family) == AF_INET {
                        sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { self.port = Int(UInt16(bigEndian: $0.pointee.sin_port)) }
                    } else if Int32(sa.pointee.sa_family) == AF_INET6 {
                        sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { self.port = Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
                    }
                }
            }
        }
    }

    /// Accepts connections on a background thread until `stop`.
    public func start() {
        let t = Thread { [self] in acceptLoop(); finished.signal() }
        t.name = "swiftkt-accept"
        acceptThread = t
        t.start()
    }

    /// Accepts connections on this thread until `stop` (from another thread or a signal handler).
    public func run() {
        acceptLoop()
    }

    /// Stops accepting; connections being served finish on their own threads.
    public func stop() {
        lock.lock()
        let was = stopped
        stopped = true
        lock.unlock()
        guard !was else { return }
        if acceptThread != nil { finished.wait() }
        SocketConnection(fd: fd).close()
    }

    /// Where the listener reports a failure that ends it (stderr by default).
    public var log: @Sendable (String) -> Void = { message in
        try? FileHandle.standardError.write(contentsOf: Data((message + "\n").utf8))
    }

    private var isStopped: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopped
    }

    private func acceptLoop() {
        while true {
            // Wait for a connection a quarter second at a time, so that `stop` is seen on every
            // system (a listening socket's shutdown does not wake accept everywhere).
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 250)
            if isStopped { return }
            if ready <= 0 { continue }
            let c = accept(fd, nil, nil)
            let error = errno
            if isStopped { if c >= 0 { SocketConnection(fd: c).close() }; return }
            if c < 0 {
                switch error {
                case EBADF, EINVAL, ENOTSOCK:
                    log("swiftkt serve: the listening socket failed: \(String(cString: strerror(error)))")
                    return
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    usleep(50_000)  // out of descriptors or memory: wait for connections to end
                default: break     // EINTR, ECONNABORTED, EPROTO…: the next one
                }
                continue
            }
            #if canImport(Darwin)
            var noSigpipe: Int32 = 1
            setsockopt(c, SOL_SOCKET, SO_NOSIGPIPE, &noSigpipe, socklen_t(MemoryLayout<Int32>.size))
            #endif
            var tv = timeval(tv_sec: timeout, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let connection = SocketConnection(fd: c)
            lock.lock()
            let busy = open >= maxConnections
            if !busy { open += 1 }
            lock.unlock()
            if busy {
                let w = ResponseWriter(sink: connection)
                try? w.send(status: 503, contentType: "application/json",
                            body: errorBody("the server has \(maxConnections) connections open; try again"))
                connection.close()
                continue
            }
            let t = Thread { [self] in
                serve(connection)
                connection.close()
                lock.lock(); open -= 1; lock.unlock()
            }
            t.stackSize = 8 << 20
            t.start()
        }
    }

    private func serve(_ connection: SocketConnection) {
        var reader = HTTPRequestReader(source: connection, limits: limits)
        var writer = ResponseWriter(sink: connection)
        do {
            // (The interim answer goes to HTTP/1.1 clients only; an HTTP/1.0 one never asks.)
            guard let request = try reader.next(interim: { try connection.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }) else { return }
            writer = ResponseWriter(sink: connection, version: request.version, method: request.method)
            handler(request, writer)
        } catch let e as HTTPError {
            if !writer.started && e.status != 499 {
                try? writer.send(status: e.status, contentType: "application/json", body: errorBody(e.message))
            }
        } catch {
            if !writer.started { try? writer.send(status: 500, contentType: "application/json", body: errorBody("\(error)")) }
        }
    }
}

/// `{"error": {"message": …, "type": …}}`: OpenAI's error shape, which Ollama's clients also read
/// (they look for a top-level "error"; OpenAI's for error.message).
public func errorBody(_ message: String, type: String = "invalid_request_error") -> [UInt8] {
    JSON.encode(["error": ["message": message, "type": type] as [String: Any]])
}
