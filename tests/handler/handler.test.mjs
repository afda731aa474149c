// The logging pipeline's handler (templates/handler/index.mjs), run with the machine's Node.js: `node --test tests/handler/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { handler } from "../../templates/handler/index.mjs";

// A sample event as SNS delivers it to Lambda (Lambda DG, "Using Lambda with Amazon SNS").
const event = {
  Records: [
    {
      EventSource: "aws:sns",
      EventVersion: "1.0",
      EventSubscriptionArn: "arn:aws:sns:us-east-1:123456789012:shop-events:6b0e71bd-7e97-4d97-80ce-4a0994e55286",
      Sns: {
        Type: "Notification",
        MessageId: "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        TopicArn: "arn:aws:sns:us-east-1:123456789012:shop-events",
        Subject: "deploy",
        Message: "order 42 shipped",
        Timestamp: "2026-11-26T08:00:00.000Z",
        MessageAttributes: {},
      },
    },
  ],
};

async function captured(fn) {
  const lines = [];
  const write = process.stdout.write;
  process.stdout.write = (chunk) => {
    lines.push(String(chunk));
    return true;
  };
  try {
    return { result: await fn(), lines };
  } finally {
    process.stdout.write = write;
  }
}

test("each SNS record is logged as one JSON line naming the message, its topic and when it was published", async () => {
  const { result, lines } = await captured(() => handler(event));
  assert.deepEqual(result, { processed: 1 });
  assert.equal(lines.length, 1);
  assert.ok(lines[0].endsWith("\n") && !lines[0].slice(0, -1).includes("\n"), "one line");
  assert.deepEqual(JSON.parse(lines[0]), {
    event: "sns",
    message_id: "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
    topic_arn: "arn:aws:sns:us-east-1:123456789012:shop-events",
    subject: "deploy",
    message: "order 42 shipped",
    published_at: "2026-11-26T08:00:00.000Z",
  });
});

test("two records make two lines, in order; an event without records logs nothing", async () => {
  const second = structuredClone(event.Records[0]);
  second.Sns.MessageId = "second";
  second.Sns.Message = "line\nbreak stays inside the JSON";
  const { result, lines } = await captured(() => handler({ Records: [event.Records[0], second] }));
  assert.equal(result.processed, 2);
  assert.deepEqual(lines.map((l) => JSON.parse(l).message_id), ["95df01b4-ee98-5cb9-9903-4c221d41eb5e", "second"]);
  assert.equal(JSON.parse(lines[1]).message, "line\nbreak stays inside the JSON");
  const empty = await captured(() => handler({}));
  assert.deepEqual([empty.result, empty.lines], [{ processed: 0 }, []]);
});
