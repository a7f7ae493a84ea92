// CSupport is header-only (include/CSupport.h); SwiftPM needs one source file per C target.
