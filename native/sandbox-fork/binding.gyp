{
  "targets": [
    {
      "target_name": "sandbox_fork",
      "sources": ["sandbox_fork.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"]
    }
  ]
}
