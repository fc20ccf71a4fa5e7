# Reading `metadata_props` from an ONNX file.
#
# ONNXRunTime.jl does not expose the model metadata, and the metadata is all we need
# from the protobuf, so this file walks the protobuf wire format directly (encoding
# documented at https://protobuf.dev/programming-guides/encoding/): a message is a
# sequence of (key, payload) records, key = field_number << 3 | wire_type.
# In onnx.proto, ModelProto.ir_version is field 1 (a varint) and
# ModelProto.metadata_props is field 14, a repeated StringStringEntryProto whose `key`
# is field 1 and `value` is field 2.

const MODELPROTO_IR_VERSION = 1
const MODELPROTO_METADATA_PROPS = 14
const ENTRY_KEY = 1
const ENTRY_VALUE = 2

"""
    read_varint(bytes, pos) -> (value::UInt64, next_pos::Int)

Decode one base-128 varint starting at index `pos` of `bytes`.
"""
function read_varint(bytes::AbstractVector{UInt8}, pos::Int)
    value = UInt64(0)
    shift = 0
    while true
        pos > length(bytes) && throw(ArgumentError("truncated protobuf varint"))
        byte = bytes[pos]
        pos += 1
        value |= UInt64(byte & 0x7f) << shift
        byte < 0x80 && return value, pos
        shift += 7
        shift > 63 && throw(ArgumentError("protobuf varint longer than 64 bits"))
    end
end

"""
    length_delimited_fields(bytes) -> Vector{Tuple{Int, UnitRange{Int}}}

The `(field_number, byte_range)` of every length-delimited record of one protobuf
message; records of the other wire types are skipped.
"""
length_delimited_fields(bytes::AbstractVector{UInt8}) = protobuf_fields(bytes)[1]

"""
    varint_fields(bytes) -> Vector{Tuple{Int, UInt64}}

The `(field_number, value)` of every varint record of one protobuf message.
"""
varint_fields(bytes::AbstractVector{UInt8}) = protobuf_fields(bytes)[2]

# One pass over a message: (length-delimited records, varint records).
function protobuf_fields(bytes::AbstractVector{UInt8})
    fields = Tuple{Int, UnitRange{Int}}[]
    varints = Tuple{Int, UInt64}[]
    pos = 1
    n = length(bytes)
    while pos <= n
        key, pos = read_varint(bytes, pos)
        field = Int(key >> 3)
        wire = Int(key & 0x07)
        if wire == 0
            value, pos = read_varint(bytes, pos)
            push!(varints, (field, value))
        elseif wire == 1
            pos += 8
        elseif wire == 2
            len, pos = read_varint(bytes, pos)
            stop = pos + Int(len) - 1
            stop > n && throw(ArgumentError("truncated protobuf field $field"))
            push!(fields, (field, pos:stop))
            pos = stop + 1
        elseif wire == 5
            pos += 4
        else
            throw(ArgumentError("unsupported protobuf wire type $wire in field $field"))
        end
    end
    pos == n + 1 || throw(ArgumentError("truncated protobuf message"))
    return fields, varints
end

"""
    onnx_ir_version(path) -> Int

The `ir_version` of the ONNX model stored at `path` (0 when the file does not record one).
"""
function onnx_ir_version(path::AbstractString)
    varints = try
        varint_fields(read(path))
    catch err
        err isa ArgumentError || rethrow()
        throw(ArgumentError("$path: not a readable ONNX model ($(err.msg))"))
    end
    for (field, value) in varints
        field == MODELPROTO_IR_VERSION && return Int(value)
    end
    return 0
end

"""
    onnx_metadata(path) -> Dict{String,String}

The `metadata_props` of the ONNX model stored at `path` (key => value).
"""
function onnx_metadata(path::AbstractString)
    bytes = read(path)
    metadata = Dict{String, String}()
    fields = try
        length_delimited_fields(bytes)
    catch err
        err isa ArgumentError || rethrow()
        throw(ArgumentError("$path: not a readable ONNX model ($(err.msg))"))
    end
    for (field, range) in fields
        field == MODELPROTO_METADATA_PROPS || continue
        entry = view(bytes, range)
        key = ""
        value = ""
        for (entry_field, entry_range) in length_delimited_fields(entry)
            if entry_field == ENTRY_KEY
                key = String(entry[entry_range])
            elseif entry_field == ENTRY_VALUE
                value = String(entry[entry_range])
            end
        end
        metadata[key] = value
    end
    return metadata
end
