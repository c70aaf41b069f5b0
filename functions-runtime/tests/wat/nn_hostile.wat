;; Calls every wasi_ephemeral_nn function with out-of-bounds pointers, bad lengths, bad handles
;; and bad values, then correctly; prints each call's nn_errno as a digit ('0' + code) after a
;; blank line (a WAGI response with no headers). Grants expected: `digits` pinned to version 1.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "digits")
  (data (i32.const 32) "secret")
  (data (i32.const 48) "digits:2")
  (data (i32.const 64) "digits:1")
  (data (i32.const 80) "\ff\fe")
  (global $n (mut i32) (i32.const 1))
  (func $rec (param i32)
    (i32.store8 (i32.add (i32.const 1024) (global.get $n)) (i32.add (local.get 0) (i32.const 48)))
    (global.set $n (i32.add (global.get $n) (i32.const 1))))
  ;; a 20-byte wasi-nn tensor at $at; its type is one byte, and the three padding bytes after it
  ;; are 0xAB, as a C guest may leave them (the host must ignore them)
  (func $tensor (param $at i32) (param $dims i32) (param $rank i32) (param $ty i32) (param $data i32) (param $len i32)
    (i32.store (local.get $at) (local.get $dims))
    (i32.store offset=4 (local.get $at) (local.get $rank))
    (i32.store offset=8 (local.get $at) (i32.const 0xABABAB00))
    (i32.store8 offset=8 (local.get $at) (local.get $ty))
    (i32.store offset=12 (local.get $at) (local.get $data))
    (i32.store offset=16 (local.get $at) (local.get $len)))
  (func (export "_start")
    (i32.store8 (i32.const 1024) (i32.const 10))
    ;; load_by_name: name out of bounds, negative pointer, graph pointer out of bounds,
    ;; huge length, not UTF-8
    (call $rec (call $load_by_name (i32.const 65530) (i32.const 100) (i32.const 0)))
    (call $rec (call $load_by_name (i32.const -1) (i32.const 6) (i32.const 0)))
    (call $rec (call $load_by_name (i32.const 16) (i32.const 6) (i32.const 65535)))
    (call $rec (call $load_by_name (i32.const 16) (i32.const -1) (i32.const 0)))
    (call $rec (call $load_by_name (i32.const 80) (i32.const 2) (i32.const 0)))
    ;; not granted; another version than the pinned one; then the pinned one (graph 0 at 0)
    (call $rec (call $load_by_name (i32.const 32) (i32.const 6) (i32.const 0)))
    (call $rec (call $load_by_name (i32.const 48) (i32.const 8) (i32.const 0)))
    (call $rec (call $load_by_name (i32.const 64) (i32.const 8) (i32.const 0)))
    ;; load: graph pointer out of bounds, OpenVINO encoding, unknown encoding, bad target,
    ;; ONNX bytes (not granted)
    (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 65534)))
    (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))
    (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 77) (i32.const 0) (i32.const 8)))
    (call $rec (call $load (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 9) (i32.const 8)))
    (call $rec (call $load (i32.const 70000) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 8)))
    ;; init_execution_context: unknown graph, context pointer out of bounds, then ok (ctx at 4)
    (call $rec (call $init (i32.const 7) (i32.const 4)))
    (call $rec (call $init (i32.const 0) (i32.const -4)))
    (call $rec (call $init (i32.const 0) (i32.const 4)))
    ;; set_input: dims [1, 64] at 200; tensor struct out of bounds
    (i32.store (i32.const 200) (i32.const 1))
    (i32.store (i32.const 204) (i32.const 64))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 65530)))
    ;; dims out of bounds
    (call $tensor (i32.const 300) (i32.const 65534) (i32.const 2) (i32.const 1) (i32.const 4096) (i32.const 256))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; rank 1000
    (call $tensor (i32.const 300) (i32.const 200) (i32.const 1000) (i32.const 1) (i32.const 4096) (i32.const 256))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; tensor type 9 (then padding 0xAB)
    (call $tensor (i32.const 300) (i32.const 200) (i32.const 2) (i32.const 9) (i32.const 4096) (i32.const 256))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; data out of bounds
    (call $tensor (i32.const 300) (i32.const 200) (i32.const 2) (i32.const 1) (i32.const 65500) (i32.const 256))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; data length does not match the dims
    (call $tensor (i32.const 300) (i32.const 200) (i32.const 2) (i32.const 1) (i32.const 4096) (i32.const 255))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; data length of 4 GiB - 1
    (call $tensor (i32.const 300) (i32.const 200) (i32.const 2) (i32.const 1) (i32.const 0) (i32.const -1))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; compute before the input is set
    (call $rec (call $compute (i32.const 0)))
    ;; a good tensor to a bad context, a bad input index, then to the right place
    (call $tensor (i32.const 300) (i32.const 200) (i32.const 2) (i32.const 1) (i32.const 4096) (i32.const 256))
    (call $rec (call $set_input (i32.const 5) (i32.const 0) (i32.const 300)))
    (call $rec (call $set_input (i32.const 0) (i32.const 3) (i32.const 300)))
    (call $rec (call $set_input (i32.const 0) (i32.const 0) (i32.const 300)))
    ;; get_output before compute
    (call $rec (call $get_output (i32.const 0) (i32.const 0) (i32.const 8192) (i32.const 40) (i32.const 8)))
    ;; compute: bad context, then ok
    (call $rec (call $compute (i32.const -1)))
    (call $rec (call $compute (i32.const 0)))
    ;; get_output: buffer out of bounds, written pointer out of bounds, bad index, bad
    ;; context, buffer too small, then ok (40 bytes of logits)
    (call $rec (call $get_output (i32.const 0) (i32.const 0) (i32.const 65530) (i32.const 40) (i32.const 8)))
    (call $rec (call $get_output (i32.const 0) (i32.const 0) (i32.const 8192) (i32.const 40) (i32.const 65533)))
    (call $rec (call $get_output (i32.const 0) (i32.const 9) (i32.const 8192) (i32.const 40) (i32.const 8)))
    (call $rec (call $get_output (i32.const 3) (i32.const 0) (i32.const 8192) (i32.const 40) (i32.const 8)))
    (call $rec (call $get_output (i32.const 0) (i32.const 0) (i32.const 8192) (i32.const 39) (i32.const 8)))
    (call $rec (call $get_output (i32.const 0) (i32.const 0) (i32.const 8192) (i32.const 40) (i32.const 8)))
    ;; the written size must be 40: record 0 if so, else 9
    (call $rec (select (i32.const 0) (i32.const 9) (i32.eq (i32.load (i32.const 8)) (i32.const 40))))
    ;; write "\n" + the codes to stdout
    (i32.store (i32.const 512) (i32.const 1024))
    (i32.store (i32.const 516) (global.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))))
