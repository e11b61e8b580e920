// Run by file_store_test.ts in a child process: holds the file store folder given as its
// argument, prints "locked", and waits to be killed.
import process from "node:process";
import { openFileStores } from "../../src/stores/file_store.ts";

openFileStores(process.argv[process.argv.length - 1], "batch");
console.log("locked");
setInterval(() => {}, 60_000);
