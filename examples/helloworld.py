"""The original Impetus example: 100 forks of pow, one stage sums the squares."""

from impetus import Impetus


class Helloworld(Impetus):
    @Impetus.node
    def pow(i):
        return i * i

    @Impetus.startup
    def start(self):
        for i in range(100):
            self.fork(self.pow, args=i)

    @Impetus.process
    def stage1(self, ready, errors):  # called once per batch of finished jobs
        self.total = getattr(self, "total", 0) + sum(job["result"] for job in ready)
        self.failed = getattr(self, "failed", 0) + len(errors)

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        print("Total:", self.total)
        print("Errors:", self.failed)
        print("shutting down")


if __name__ == "__main__":
    app = Helloworld()  # address/authkey from arguments, env, or the local stack's config
    print("My Id:", app.id)
    app.run()
