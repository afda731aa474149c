// The logging pipeline's function: each SNS record it receives becomes one JSON line in its CloudWatch log group
// (/aws/lambda/STACK-events), so operators can search events by id, topic or time with `webscale logs` or
// CloudWatch Logs Insights. Deployed by webscale from this folder; tested by tests/handler/ (`node --test`).

/** The line logged for one SNS record: what an operator looks for when tracing an event. */
export function line(record) {
  const sns = record.Sns ?? {};
  return JSON.stringify({
    event: "sns",
    message_id: sns.MessageId ?? null,
    topic_arn: sns.TopicArn ?? null,
    subject: sns.Subject ?? null,
    message: sns.Message ?? null,
    published_at: sns.Timestamp ?? null,
  });
}

export const handler = async (event) => {
  const records = event?.Records ?? [];
  for (const record of records) {
    // process.stdout, not console.log: Lambda prefixes console.log lines with a timestamp and request id, and the
    // point is one JSON line per event.
    process.stdout.write(line(record) + "\n");
  }
  return { processed: records.length };
};
