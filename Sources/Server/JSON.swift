// JSON in and out of the API: request bodies as typed fields whose errors name the field and what
// it should be (a 400 for the client), responses encoded with sorted keys.
import Foundation

public enum JSON {
    public static func encode(_ object: [String: Any]) -> [UInt8] {
        // Only dictionaries of strings, numbers, booleans, arrays and NSNull reach here.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Array(data)
    }

    /// The request body as a JSON object.
    public static func object(_ body: [UInt8]) throws -> Fields {
        guard !body.isEmpty else { throw HTTPError(400, "the request has no body; send a JSON object") }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw HTTPError(400, "the body is not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = value as? [String: Any] else { throw HTTPError(400, "the body must be a JSON object") }
        return Fields(dict, path: "")
    }
}

/// A JSON object's fields, read with the types the API expects.
public struct Fields {
    public let dict: [String: Any]
    let path: String

    init(_ dict: [String: Any], path: String) { self.dict = dict; self.path = path }

    func name(_ key: String) -> String { path.isEmpty ? "'\(key)'" : "'\(path).\(key)'" }

    /// nil when absent or null.
    func value(_ key: String) -> Any? {
        guard let v = dict[key], !(v is NSNull) else { return nil }
        return v
    }

    static func isBool(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    public func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw HTTPError(400, "\(name(key)) must be a string") }
        return s
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard Self.isBool(v), let n = v as? NSNumber else { throw HTTPError(400, "\(name(key)) must be true or false") }
        return n.boolValue
    }

    public func number(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard !Self.isBool(v), let n = v as? NSNumber, n.doubleValue.isFinite else { throw HTTPError(400, "\(name(key)) must be a number") }
        return n.doubleValue
    }

    public func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let x = try number(key) else { return nil }
        guard range.contains(x) else { throw HTTPError(400, "\(name(key)) must be in \(range.lowerBound)…\(range.upperBound), got \(x)") }
        return x
    }

    public func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let x = try number(key) else { return nil }
        // (Int(exactly:) is nil for fractions and for 2^63 and beyond, which Double(Int.max) rounds up to.)
        guard let i = Int(exactly: x), range.contains(i) else {
            throw HTTPError(400, "\(name(key)) must be a whole number in \(range.lowerBound)…\(range.upperBound), got \(x)")
        }
        return i
    }

    /// A 64-bit seed: any whole number from −2^63 to 2^64 − 1, read without rounding through a
    /// double (a negative seed is its two's-complement bits).
    public func seed(_ key: String) throws -> UInt64? {
        guard let v = value(key) else { return nil }
        guard !Self.isBool(v), let n = v as? NSNumber else { throw HTTPError(400, "\(name(key)) must be a whole number") }
        switch String(cString: n.objCType) {
        case "Q": return n.uint64Value
        case "q", "l", "i", "s", "c": return UInt64(bitPattern: n.int64Value)
        default:
            guard let i = Int64(exactly: n.doubleValue) else {
                throw HTTPError(400, "\(name(key)) must be a whole number from -2^63 to 2^64 - 1, got \(n)")
            }
            return UInt64(bitPattern: i)
        }
    }

    public func object(_ key: String) throws -> Fields? {
        guard let v = value(key) else { return nil }
        guard let d = v as? [String: Any] else { throw HTTPError(400, "\(name(key)) must be an object") }
        return Fields(d, path: path.isEmpty ? key : "\(path).\(key)")
    }

    public func array(_ key: String) throws -> [Any]? {
        guard let v = value(key) else { return nil }
        guard let a = v as? [Any] else { throw HTTPError(400, "\(name(key)) must be an array") }
        return a
    }

    /// A string or an array of strings (OpenAI's `stop`, Ollama's `stop`).
    public func strings(_ key: String, max: Int = 16) throws -> [String]? {
        guard let v = value(key) else { return nil }
        if let s = v as? String { return [s] }
        guard let a = v as? [Any], let list = a as? [String] else { throw HTTPError(400, "\(name(key)) must be a string or an array of strings") }
        guard list.count <= max else { throw HTTPError(400, "\(name(key)) has \(list.count) entries; at most \(max)") }
        return list
    }

    /// Object `i` of array `key` (messages).
    static func element(_ v: Any, of key: String, at i: Int) throws -> Fields {
        guard let d = v as? [String: Any] else { throw HTTPError(400, "'\(key)[\(i)]' must be an object") }
        return Fields(d, path: "\(key)[\(i)]")
    }
}
