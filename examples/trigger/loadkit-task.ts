import { task } from "@trigger.dev/sdk";

// The task loadkit's items trigger by default (--tasks loadkit-task): it does nothing, so a
// load test measures the batch API, and its runs finish at once and cost next to nothing.
export const loadkitTask = task({
  id: "loadkit-task",
  run: async () => {},
});
